"""The Ray dashboard line a sweep prints when Ray has started, and the dry run's plan of it:
where the dashboard is and how to sign in, never the token. No Ray is started here."""

from __future__ import annotations

import socket

import pytest
from click.testing import CliRunner

from abl.cli import main
from abl.errors import AblError
from abl.search.dashboard import dashboard_line, planned_line
from abl.search.engine import SweepOptions, check_port, init_ray

TOKEN = "f3e1c0ffee0123456789abcdef0123456789abcdef0123456789abcdef012345"
LOCAL = {"RAY_AUTH_MODE": "token"}  # what a new local ray.init sets


def test_the_line_names_the_url_and_where_the_token_is_never_the_token():
    line = dashboard_line("http://127.0.0.1:8265", environ=LOCAL)
    assert line == (
        "ray      dashboard http://127.0.0.1:8265 (sign in with the token in "
        "~/.ray/auth_token, which `ray get-auth-token` prints)"
    )
    given = {**LOCAL, "RAY_AUTH_TOKEN": TOKEN}
    line = dashboard_line("http://127.0.0.1:8265", environ=given)
    assert "$RAY_AUTH_TOKEN" in line and TOKEN not in line
    path = {**LOCAL, "RAY_AUTH_TOKEN_PATH": "/secrets/ray-token"}
    assert "the token in /secrets/ray-token, which `ray get-auth-token`" in dashboard_line(
        "http://127.0.0.1:8265", environ=path
    )
    off = dashboard_line("http://127.0.0.1:8265", environ={"RAY_AUTH_MODE": "disabled"})
    assert off == "ray      dashboard http://127.0.0.1:8265"


def test_the_line_says_when_the_default_port_was_taken():
    line = dashboard_line("http://127.0.0.1:8266", environ=LOCAL)
    assert line.startswith("ray      dashboard http://127.0.0.1:8266 (8265 was taken; sign in")
    asked = dashboard_line("http://127.0.0.1:9000", asked_port=9000, environ=LOCAL)
    assert "taken" not in asked and asked.startswith("ray      dashboard http://127.0.0.1:9000 (")


def test_a_clusters_line_points_at_its_token_on_the_head():
    line = dashboard_line("http://10.0.0.5:8265", cluster=True, environ=LOCAL)
    assert line == (
        "ray      dashboard http://10.0.0.5:8265 of the cluster (sign in with the cluster's "
        "token, which `ray get-auth-token` prints on the head; see cluster/README.md)"
    )


def test_a_taken_dashboard_port_is_one_line_before_ray_starts():
    import ray

    started = ray.is_initialized()  # another test's Ray in this process: init_ray joins it
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(AblError, match=f"--dashboard-port {port} is taken on 127.0.0.1"):
            check_port("127.0.0.1", port)
        if not started:
            with pytest.raises(AblError, match="leave --dashboard-port out"):
                init_ray(SweepOptions(dashboard_port=port))  # fails before ray.init
            assert not ray.is_initialized()


def test_the_plan_says_where_the_dashboard_will_be():
    line = planned_line(dashboard=True, address=None, port=None, environ={})
    assert line == (
        "ray      dashboard http://127.0.0.1:8265 while the sweep runs (or the next free port "
        "if 8265 is taken; sign in with the token in ~/.ray/auth_token, which `ray "
        "get-auth-token` prints)"
    )
    fixed = planned_line(dashboard=True, address=None, port=9100, environ={})
    assert fixed is not None and fixed.startswith(
        "ray      dashboard http://127.0.0.1:9100 while the sweep runs (sign in"
    )
    off = planned_line(
        dashboard=True, address=None, port=9100, environ={"RAY_AUTH_MODE": "disabled"}
    )
    assert off == "ray      dashboard http://127.0.0.1:9100 while the sweep runs"
    assert planned_line(dashboard=False, address=None, port=None, environ={}) is None
    cluster = planned_line(dashboard=True, address="auto", port=None, environ={})
    assert cluster is not None and "cluster/README.md" in cluster and "head" in cluster


def test_dry_run_prints_the_plans_dashboard_line_and_none_with_no_dashboard(tmp_path):
    runs = str(tmp_path / "runs")
    shown = CliRunner().invoke(
        main, ["--root", runs, "search", "quickstart", "--dry-run", "--dashboard-port", "9100"]
    )
    assert shown.exit_code == 0, shown.output
    (line,) = [x for x in shown.output.splitlines() if x.startswith("ray ")]
    assert line.startswith("ray      dashboard http://127.0.0.1:9100 while the sweep runs")
    hidden = CliRunner().invoke(
        main, ["--root", runs, "search", "quickstart", "--dry-run", "--no-dashboard"]
    )
    assert hidden.exit_code == 0 and "dashboard" not in hidden.output
    assert not (tmp_path / "runs").exists()
