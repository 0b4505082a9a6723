"""``abl submit/jobs/logs/stop`` against a real Ray head (``ray start --head``) on loopback.

The head runs with ``--block`` in its own process group, and the teardown ends that group:
``ray stop`` would also stop every other Ray instance of this user on the machine. It requires
a token (Ray's token authentication), as a cluster should; the abl commands are given it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from abl.results.store import read_trials
from tests.e2e.procs import group_alive, stop_group

pytestmark = pytest.mark.ray

SPACE = """
name: {name}
trainable: forecast
fixed:
  model.kind: att
  model.d_model: 8
  data.length: {length}
  data.time_steps: 16
  train.epochs: {epochs}
  train.batch_size: 64
grid:
  model.pe_type: [none, rope]
repeats: 1
resources: {{cpu: 1}}
"""


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports that are free now (sockets held open together, so no repeats)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def get_json(url: str, token: str, timeout: float = 10) -> Any:
    """GET a dashboard endpoint with the cluster's token."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        return json.loads(resp.read())


def wait_until(check, timeout: float, what: Any, every: float = 0.5) -> Any:
    """Call ``check`` until it returns something truthy; fail after ``timeout`` seconds.

    ``what`` names the wait in the failure; a callable is asked then, for the latest state.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except OSError:
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, (
            f"timed out waiting for {what() if callable(what) else what}"
        )
        time.sleep(every)


def stop_head(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group (Ray drains the node), SIGKILL what is left; leave nothing."""
    stop_group(proc, signal.SIGTERM, timeout=8)
    assert not group_alive(proc.pid), "the Ray head left processes running"


@dataclass
class Head:
    address: str  # the Jobs API: http://127.0.0.1:PORT
    env: dict[str, str]  # environment for abl commands: PATH, the token
    token: str  # the cluster's authentication token
    runs: Path  # ABL_ROOT on the cluster: where a job without --root writes


@pytest.fixture(scope="module")
def head(tmp_path_factory) -> Iterator[Head]:
    """``ray start --head`` with the dashboard on 127.0.0.1 and free ports; its group ends after."""
    ray_bin = Path(sys.executable).with_name("ray")
    gcs, dash, client, agent, grpc, metrics, env_agent, nm, om = free_ports(9)
    temp_dir = tempfile.mkdtemp(prefix="abl-ray-")  # short: Ray's socket paths have a limit
    env = dict(os.environ)
    # The job's entrypoint runs `python -m abl`: this venv's python.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("RAY_ADDRESS", None)
    runs = tmp_path_factory.mktemp("cluster") / "abl-runs"
    env["ABL_ROOT"] = str(runs)  # as the configs in cluster/ set it on every node
    token = secrets.token_hex(32)
    env.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token})
    cmd = [
        str(ray_bin), "start", "--head", "--block", "--disable-usage-stats",
        "--num-cpus=2", "--num-gpus=0",
        "--node-ip-address=127.0.0.1", f"--port={gcs}",
        "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
        f"--ray-client-server-port={client}", f"--dashboard-agent-listen-port={agent}",
        f"--dashboard-agent-grpc-port={grpc}", f"--metrics-export-port={metrics}",
        f"--runtime-env-agent-port={env_agent}", f"--node-manager-port={nm}",
        f"--object-manager-port={om}", f"--temp-dir={temp_dir}",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    address = f"http://127.0.0.1:{dash}"
    try:
        wait_until(lambda: get_json(f"{address}/api/version", token), 120, "the Ray dashboard")
        wait_until(lambda: get_json(f"{address}/api/jobs/", token) is not None, 60, "the Jobs API")
        yield Head(address=address, env=env, token=token, runs=runs)
    finally:
        stop_head(proc)
        shutil.rmtree(temp_dir, ignore_errors=True)


def abl(
    head: Head, *args: str, cwd: Path, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the abl CLI in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "abl", *args],
        cwd=cwd,
        env=env or head.env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def project(tmp_path: Path, *, name: str, epochs: int, length: int) -> Path:
    """A project directory with a space file, as `abl submit` uploads it."""
    root = tmp_path / "project"
    (root / "spaces").mkdir(parents=True)
    (root / "spaces" / f"{name}.yaml").write_text(
        SPACE.format(name=name, epochs=epochs, length=length)
    )
    (root / ".venv").mkdir()  # excluded from the upload; big in real projects
    (root / ".venv" / "big.bin").write_bytes(b"\0" * 1024)
    return root


def submit(
    head: Head, proj: Path, space: str, *root: str, env: dict[str, str] | None = None
) -> str:
    out = abl(head, *root, "submit", space, "--address", head.address, cwd=proj, env=env)
    assert out.returncode == 0, out.stderr
    match = re.search(r"submitted (\S+) to ", out.stdout)
    assert match, out.stdout
    # The job's dashboard page, and which token signs in there (never the token itself).
    page = f"  dashboard  {head.address}/#/jobs/{match.group(1)}  (sign in with the token in "
    assert f"{page}$RAY_AUTH_TOKEN)" in out.stdout and head.token not in out.stdout, out.stdout
    return match.group(1)


def test_submit_runs_the_space_on_the_cluster_and_logs_show_it(head, tmp_path):
    proj = project(tmp_path, name="jobtiny", epochs=1, length=400)
    # A local ABL_ROOT is about this machine: the job writes to the cluster's ABL_ROOT.
    local = {**head.env, "ABL_ROOT": str(tmp_path / "local-runs")}
    job = submit(head, proj, "spaces/jobtiny.yaml", env=local)
    assert job.startswith("abl-jobtiny-")

    follow = abl(head, "logs", job, "--follow", "--address", head.address, cwd=proj)
    assert follow.returncode == 0, follow.stderr
    assert "SUCCEEDED" in follow.stderr
    assert "jobtiny: 2 trials of 'forecast'" in follow.stdout
    # `abl search --address auto` on the head says where the cluster's dashboard is.
    (line,) = [x for x in follow.stdout.splitlines() if x.startswith("ray      dashboard")]
    assert line == (
        f"ray      dashboard {head.address} of the cluster (sign in with the cluster's token, "
        "which `ray get-auth-token` prints on the head; see cluster/README.md)"
    )
    logs = abl(head, "logs", job, "--address", head.address, cwd=proj)
    assert logs.returncode == 0 and "results " in logs.stdout and "mlflow " in logs.stdout

    runtime_env = get_json(f"{head.address}/api/jobs/{job}", head.token)["runtime_env"]
    assert runtime_env["working_dir"].startswith("gcs://")  # the project was uploaded
    assert {".venv", "abl-runs", ".git", "test-artifacts"} <= set(runtime_env["excludes"])

    assert not (tmp_path / "local-runs").exists()
    runs = head.runs
    (run_dir,) = (runs / "jobtiny").iterdir()
    trials = read_trials(run_dir).to_pylist()
    assert sorted(t["model.pe_type"] for t in trials) == ["none", "rope"]
    assert {t["status"] for t in trials} == {"completed"}
    client = MlflowClient(f"sqlite:///{runs / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("jobtiny")
    children = client.search_runs(
        [experiment.experiment_id], filter_string="tags.mlflow.parentRunId != ''"
    )
    assert len(children) == 2

    listing = abl(head, "jobs", "--address", head.address, cwd=proj)
    assert listing.returncode == 0
    (row,) = [ln for ln in listing.stdout.splitlines() if job in ln]
    assert "SUCCEEDED" in row and "jobtiny" in row


def test_dashboard_lists_the_sweeps_job_and_trial_actors_while_it_runs_then_stop(head, tmp_path):
    proj = project(tmp_path, name="joblong", epochs=200, length=3000)
    runs = tmp_path / "runs"
    job = submit(head, proj, "spaces/joblong.yaml", "--root", str(runs))

    def running() -> dict[str, Any] | None:
        info = get_json(f"{head.address}/api/jobs/{job}", head.token)
        return info if info["status"] == "RUNNING" and info.get("job_id") else None

    ray_job_id = wait_until(running, 120, "the job to run")["job_id"]
    listed = {j["submission_id"] for j in get_json(f"{head.address}/api/jobs/", head.token)}
    assert job in listed

    def trial_actors() -> list[dict[str, Any]]:
        url = (
            f"{head.address}/api/v0/actors?limit=1000&detail=1"
            f"&filter_keys=job_id&filter_predicates=%3D&filter_values={ray_job_id}"
        )
        actors = get_json(url, head.token)["data"]["result"]["result"]
        seen.update(a["class_name"] for a in actors)
        # Tune runs a function trainable (abl's run_function) as ImplicitFunc actors.
        return [a for a in actors if a["state"] == "ALIVE" and a["class_name"] == "ImplicitFunc"]

    seen: set[str] = set()
    actors = wait_until(trial_actors, 180, lambda: f"trial actors (actors seen: {seen})")
    assert all(a["job_id"] == ray_job_id for a in actors)

    stopped = abl(head, "stop", job, "--address", head.address, cwd=proj)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == f"{job}: STOPPED"
    again = abl(head, "stop", job, "--address", head.address, cwd=proj)
    assert again.stdout.strip() == f"{job}: already STOPPED"
    (run_dir,) = (runs / "joblong").iterdir()  # an explicit --root is where the job wrote
    assert (run_dir / "space.yaml").is_file()


def test_user_mistakes_are_one_line_errors(head, tmp_path):
    proj = project(tmp_path, name="jobtiny", epochs=1, length=400)
    unknown = abl(head, "logs", "abl-nosuch", "--address", head.address, cwd=proj)
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("abl: error: JOB must be one of the jobs on ")
    assert "got 'abl-nosuch'" in unknown.stderr and "Traceback" not in unknown.stderr

    no_token = {k: v for k, v in head.env.items() if not k.startswith("RAY_AUTH")}
    denied = abl(head, "jobs", "--address", head.address, cwd=proj, env=no_token)
    assert denied.returncode == 2 and "requires its token" in denied.stderr

    (closed,) = free_ports(1)
    down = abl(head, "jobs", "--address", f"http://127.0.0.1:{closed}", cwd=proj)
    assert down.returncode == 2 and "got no answer from" in down.stderr

    client_address = abl(head, "jobs", "--address", "ray://127.0.0.1:10001", cwd=proj)
    assert client_address.returncode == 2
    assert "http://HOST:8265" in client_address.stderr and "ray://" in client_address.stderr

    # The space is checked before anything is sent: a bad override fails with no head at all.
    bad = abl(
        head, "submit", "spaces/jobtiny.yaml", "train.epoch=2", "--address",
        f"http://127.0.0.1:{closed}", cwd=proj,
    )  # fmt: skip
    assert bad.returncode == 2 and "train.epoch" in bad.stderr and "no answer" not in bad.stderr

    # abl search joins a cluster's GCS; the Jobs API address is for abl submit.
    search = abl(head, "search", "spaces/jobtiny.yaml", "--address", head.address, cwd=proj)
    assert search.returncode == 2 and "is for `abl submit`" in search.stderr

    outside = tmp_path / "elsewhere.yaml"
    outside.write_text(SPACE.format(name="x", epochs=1, length=400))
    away = abl(head, "submit", str(outside), "--address", head.address, cwd=proj)
    assert away.returncode == 2 and "inside the uploaded working directory" in away.stderr
