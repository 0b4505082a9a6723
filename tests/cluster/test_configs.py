"""cluster/: launcher YAMLs pass Ray's own schema, manifests and schedules carry what they need."""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import yaml

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"
LAUNCHERS = ["aws-gpu.yaml", "gcp-gpu.yaml", "onprem.yaml"]
NIGHTLY = "abl nightly cluster/nightly.yaml"
SHARED = "/mnt/shared"


def launcher(name: str) -> dict[str, Any]:
    return yaml.safe_load((CLUSTER / name).read_text())


def manifests(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((CLUSTER / "kuberay" / name).read_text()) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def ray_schema() -> dict[str, Any]:
    """The cluster-config schema that ships inside the installed ray package."""
    return json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launcher_passes_rays_schema(name, ray_schema):
    jsonschema.validate(launcher(name), ray_schema)


def test_rays_schema_rejects_what_ray_up_would():
    """The check has teeth: a fractional GPU resource and a misspelt key both fail it."""
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    bad = launcher("aws-gpu.yaml")
    bad["available_node_types"]["gpu_small"]["resources"]["GPU"] = 0.5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    typo = launcher("aws-gpu.yaml")
    typo["head_setup_comands"] = typo.pop("head_setup_commands")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(typo, schema)


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launcher_survives_rays_defaults_and_validation(name):
    """What `ray up` does first: fill Ray's defaults for the provider, then validate."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(launcher(name)))


@pytest.mark.parametrize("name", ["aws-gpu.yaml", "gcp-gpu.yaml"])
def test_cloud_launcher_has_cpu_head_and_small_and_large_gpu_workers(name):
    cfg = launcher(name)
    types = cfg["available_node_types"]
    head = types[cfg["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    workers = {k: v for k, v in types.items() if k != cfg["head_node_type"]}
    assert {"gpu_small", "gpu_large"} <= set(workers)
    for node in workers.values():
        assert node["resources"]["GPU"] >= 1
        assert 0 <= node["min_workers"] <= node["max_workers"]
    assert sum(n["max_workers"] for n in workers.values()) <= cfg["max_workers"]
    assert cfg["idle_timeout_minutes"] > 0


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launcher_installs_abl_mounts_shared_storage_and_serves_the_dashboard(name):
    cfg = launcher(name)
    setup = "\n".join(cfg["setup_commands"])
    assert re.search(r"pip install .*-e .*abl", setup), "setup must install abl"
    assert any(Path(remote).name == "abl" for remote in cfg["file_mounts"])
    assert {".venv", "abl-runs", ".git"} <= set(cfg["rsync_exclude"])
    assert "mount" in setup and SHARED in setup
    assert f"ABL_ROOT={SHARED}/abl-runs" in setup
    head = " ".join(cfg["head_start_ray_commands"])
    assert "--head" in head and "--dashboard-host=0.0.0.0" in head
    assert "$RAY_HEAD_IP:6379" in " ".join(cfg["worker_start_ray_commands"])


def test_onprem_lists_head_and_worker_ips():
    provider = launcher("onprem.yaml")["provider"]
    assert provider["type"] == "local"
    assert provider["head_ip"] and provider["worker_ips"]
    assert provider["head_ip"] not in provider["worker_ips"]


def _check_pod(template: dict[str, Any], *, gpu: bool) -> None:
    container = template["spec"]["containers"][0]
    assert container["image"]
    limits = container["resources"]["limits"]
    assert (int(limits.get("nvidia.com/gpu", 0)) >= 1) is gpu
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert SHARED in mounts
    claims = [v["persistentVolumeClaim"]["claimName"] for v in template["spec"]["volumes"]]
    assert claims == ["abl-runs"]


def test_raycluster_has_cpu_head_gpu_workers_and_shared_runs():
    docs = manifests("raycluster.yaml")
    pvc = by_kind(docs, "PersistentVolumeClaim")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    cluster = by_kind(docs, "RayCluster")
    assert cluster["apiVersion"] == "ray.io/v1"
    spec = cluster["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["headGroupSpec"]["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    _check_pod(spec["headGroupSpec"]["template"], gpu=False)
    (group,) = spec["workerGroupSpecs"]
    assert group["groupName"] and 0 <= group["minReplicas"] <= group["maxReplicas"]
    _check_pod(group["template"], gpu=True)


def _check_rayjob_spec(spec: dict[str, Any], *, command: str) -> None:
    cluster = by_kind(manifests("raycluster.yaml"), "RayCluster")["metadata"]["name"]
    assert spec["clusterSelector"] == {"ray.io/cluster": cluster}
    assert command in " ".join(spec["entrypoint"].split())
    assert "--root /mnt/shared/abl-runs" in spec["entrypoint"]
    assert isinstance(yaml.safe_load(spec["runtimeEnvYAML"]), dict)


def test_rayjob_runs_a_sweep_on_the_standing_cluster():
    job = by_kind(manifests("rayjob.yaml"), "RayJob")
    assert job["apiVersion"] == "ray.io/v1" and job["metadata"]["name"]
    _check_rayjob_spec(job["spec"], command="abl --root /mnt/shared/abl-runs search")
    assert "--address auto" in job["spec"]["entrypoint"]
    space = job["spec"]["entrypoint"].split("search", 1)[1].split()[0]
    assert (CLUSTER.parent / Path(space).relative_to("/home/ray/abl")).is_file()


def test_nightly_raycronjob_runs_abl_nightly():
    cron = by_kind(manifests("nightly-raycronjob.yaml"), "RayCronJob")
    assert cron["apiVersion"] == "ray.io/v1"
    assert len(cron["spec"]["schedule"].split()) == 5
    _check_rayjob_spec(cron["spec"]["jobTemplate"], command=NIGHTLY.replace("abl ", "", 1))


def test_nightly_cronjob_creates_the_rayjob_it_carries():
    docs = manifests("nightly-cronjob.yaml")
    cron = by_kind(docs, "CronJob")
    assert cron["apiVersion"] == "batch/v1"
    assert len(cron["spec"]["schedule"].split()) == 5
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == by_kind(docs, "ServiceAccount")["metadata"]["name"]
    assert "kubectl create -f /config/rayjob.yaml" in " ".join(pod["containers"][0]["command"])
    rules = by_kind(docs, "Role")["rules"]
    assert any("rayjobs" in r["resources"] and "create" in r["verbs"] for r in rules)
    rayjob = yaml.safe_load(by_kind(docs, "ConfigMap")["data"]["rayjob.yaml"])
    assert rayjob["kind"] == "RayJob" and rayjob["metadata"]["generateName"]
    _check_rayjob_spec(rayjob["spec"], command=NIGHTLY.replace("abl ", "", 1))


def test_crontab_line_runs_abl_nightly_on_a_valid_schedule():
    lines = [
        ln
        for ln in (CLUSTER / "schedule" / "crontab").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert len(lines) == 1
    minute, hour, dom, month, dow, command = lines[0].split(None, 5)
    assert 0 <= int(minute) < 60 and 0 <= int(hour) < 24
    assert (dom, month, dow) == ("*", "*", "*")
    assert '/abl-venv/bin/abl" nightly cluster/nightly.yaml' in command


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string((CLUSTER / "schedule" / name).read_text())
    return parser


def test_systemd_timer_starts_the_nightly_service():
    service, timer = _unit("abl-nightly.service"), _unit("abl-nightly.timer")
    assert service["Service"]["Type"] == "oneshot"
    assert service["Service"]["ExecStart"].endswith(NIGHTLY.replace("abl ", "/abl ", 1))
    assert timer["Timer"]["Unit"] == "abl-nightly.service"
    assert timer["Install"]["WantedBy"] == "timers.target"
    calendar = timer["Timer"]["OnCalendar"]
    if shutil.which("systemd-analyze"):
        subprocess.run(["systemd-analyze", "calendar", calendar], check=True, capture_output=True)
