"""``abl server`` on a real PostgreSQL: a sweep logs to it over HTTP and its runs read back.

The test starts its own PostgreSQL cluster (initdb in a temporary directory, a free loopback
port, no Unix socket), then ``abl server`` on it, then ``abl search`` with ``--tracking-uri``.
PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from mlflow.tracking import MlflowClient

from abl.results.store import read_trials
from tests.e2e.procs import free_port, stop_group, wait_for

FAST = ["-c", "fsync=off", "-c", "max_connections=50"]  # a throwaway cluster
TINY = [
    "data.length=300",
    "data.time_steps=16",
    "model.d_model=8",
    "model.is_causal=true",
    "model.pe_type=none,rope",
    "train.epochs=2",
    "repeats=1",
]


ABL = [sys.executable, "-m", "abl"]
PASSWORD = "s3cret-pw"


def pg_bin() -> Path | None:
    """The directory of Debian's ``initdb`` and ``postgres``, or of the ones on PATH."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    initdb = found[-1] if found else shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def as_postgres_user() -> dict[str, Any]:
    """Popen arguments that drop root to the ``postgres`` user; none when not root."""
    if os.geteuid() != 0:
        return {}
    user = pwd.getpwnam("postgres")
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


@contextlib.contextmanager
def postgresql() -> Iterator[str]:
    """A fresh PostgreSQL cluster on 127.0.0.1 with a ``mlflow`` database; yields its URI."""
    bin_dir = pg_bin()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL is not installed (Debian: apt-get install postgresql; .ci/run does)"
        )
    user = as_postgres_user()
    # Not under pytest's tmp_path: that is private to root, and the server may run as postgres.
    home = Path(tempfile.mkdtemp(prefix="abl-pg-"))
    if user:
        os.chown(home, user["user"], user["group"])
    data, port = home / "data", free_port()
    subprocess.run(
        [
            bin_dir / "initdb",
            "-D",
            data,
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        cwd=home,
        check=True,
        capture_output=True,
        **user,
    )
    log = open(home / "postgres.log", "wb")  # noqa: SIM115  (closed below)
    server = subprocess.Popen(
        [bin_dir / "postgres", "-D", data, "-p", str(port), "-h", "127.0.0.1", "-k", "", *FAST],
        cwd=home,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        **user,
    )
    try:
        conn = _connect(port, "postgres")
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE mlflow")
        conn.close()
        # Trust authentication ignores the password; it is there to check that it never shows.
        yield f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/mlflow"
    finally:
        stopped = stop_group(server)
        log.close()
        shutil.rmtree(home, ignore_errors=True)
        assert stopped, "PostgreSQL did not stop on SIGINT (fast shutdown)"


def _connect(port: int, dbname: str, timeout: float = 60) -> Any:
    import psycopg2

    deadline = time.monotonic() + timeout
    while True:
        try:
            return psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname=dbname)
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def group_cmdlines(pgid: int) -> list[str]:
    """The command lines of the processes in process group ``pgid``."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if os.getpgid(int(pid)) == pgid:
                out.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
    return out


@contextlib.contextmanager
def abl_server(root: Path, *flags: str) -> Iterator[tuple[int, list[str]]]:
    """``abl server`` on a free loopback port in its own process group; stopped with Ctrl-C.

    Yields the port and the command lines of every process of the server's group.
    """
    port = free_port()
    log = open(root.parent / "server.log", "wb")  # noqa: SIM115  (closed below)
    proc = subprocess.Popen(
        [*ABL, "--root", str(root), "server", *flags, "--port", str(port), "--workers", "1"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/health", timeout=180)
        yield port, group_cmdlines(proc.pid)
    finally:
        stopped = stop_group(proc)
        log.close()
        assert stopped, "abl server left processes running after Ctrl-C"


@pytest.fixture(scope="module")
def team_sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    root, artifacts = tmp / "runs", tmp / "artifacts"
    with (
        postgresql() as uri,
        abl_server(root, "--backend-store-uri", uri, "--artifacts-destination", str(artifacts)) as (
            port,
            cmdlines,
        ),
    ):
        url = f"http://127.0.0.1:{port}"
        proc = subprocess.run(
            [
                *ABL,
                "--root",
                str(root),
                "search",
                "quickstart",
                *TINY,
                "--tracking-uri",
                url,
                "--no-dashboard",
            ],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=600,
        )
        client = MlflowClient(url)
        exp = client.get_experiment_by_name("quickstart")
        runs = client.search_runs([exp.experiment_id]) if exp else []
        artifacts_of = {r.info.run_id: client.list_artifacts(r.info.run_id) for r in runs}
        conn = _connect(urlsplit(uri).port, "mlflow")
        with conn.cursor() as cur:
            cur.execute("SELECT run_uuid FROM runs")
            in_postgres = {row[0] for row in cur.fetchall()}
        conn.close()
    server_log = (tmp / "server.log").read_text(errors="replace")
    yield proc, root, artifacts, runs, artifacts_of, in_postgres, cmdlines, server_log


@pytest.mark.ray
def test_the_sweep_logged_to_the_server(team_sweep):
    proc, root, *_ = team_sweep
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mlflow   http://127.0.0.1:" in proc.stdout
    assert not (root / "mlflow.db").exists()  # nothing went to the local SQLite default


@pytest.mark.ray
def test_parent_and_one_child_per_trial_with_params_and_metrics(team_sweep):
    _, root, _, runs, *_ = team_sweep
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    (run_dir,) = (root / "quickstart").iterdir()
    trials = {t["trial_id"]: t for t in read_trials(run_dir).to_pylist()}
    for child in children:
        trial = trials[child.info.run_name]
        assert child.info.status == "FINISHED" and trial["mlflow_run_id"] == child.info.run_id
        assert child.data.params["model.pe_type"] == trial["model.pe_type"]
        assert child.data.params["train.epochs"] == "2"
        assert child.data.metrics["val/loss"] == pytest.approx(trial["val/loss"])


@pytest.mark.ray
def test_runs_live_in_postgresql_and_artifacts_on_the_server(team_sweep):
    _, _, artifacts, runs, artifacts_of, in_postgres, *_ = team_sweep
    assert {r.info.run_id for r in runs} == in_postgres
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    names = {f.path for f in artifacts_of[parent.info.run_id]}
    assert {"space.yaml", "report"} <= names
    assert list(artifacts.rglob("space.yaml")) and list(artifacts.rglob("report.md"))


@pytest.mark.ray
def test_the_database_password_is_never_shown(team_sweep):
    *_, cmdlines, server_log = team_sweep
    assert any("mlflow" in c and "server" in c for c in cmdlines), cmdlines
    assert not [c for c in cmdlines if PASSWORD in c]
    assert "postgresql://postgres:***@127.0.0.1:" in server_log and PASSWORD not in server_log


def test_without_flags_it_serves_sqlite_and_artifacts_of_the_results_root(tmp_path):
    root = tmp_path / "runs"
    (tmp_path / "note.txt").write_text("hello")
    with abl_server(root) as (port, _):
        client = MlflowClient(f"http://127.0.0.1:{port}")
        run = client.create_run(client.create_experiment("solo"))
        client.log_artifact(run.info.run_id, str(tmp_path / "note.txt"))
    local = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    assert local.get_run(run.info.run_id).info.experiment_id == run.info.experiment_id
    (stored,) = (root / "mlartifacts").rglob("note.txt")
    assert stored.read_text() == "hello"


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        (
            "mysql://u@h/db",
            "must be postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE or sqlite:///PATH; got 'mysql://u@h/db'",
        ),
        ("http://127.0.0.1:5000", "must be a database, not a tracking server"),
        ("postgresql://u:hunter2@h", "must name a host and a database"),
        ("sqlite:////no/such/dir/mlflow.db", "SQLite file in an existing directory"),
    ],
)
def test_a_bad_backend_uri_is_one_line_and_exit_2(tmp_path, uri, fragment):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "abl",
            "server",
            "--backend-store-uri",
            uri,
            "--port",
            str(free_port()),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("abl: error: --backend-store-uri ")
    assert fragment in lines[0] and "hunter2" not in lines[0]
