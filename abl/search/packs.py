"""Trial packs (``pack: K`` in a space): trials that share an architecture train as one Ray
trial, and are still one trial each to everything downstream.

A grid or random sweep's trials are grouped by :func:`abl.trainables.pack.pack_key` (equal in
every key but the seed and the per-member optimizer settings) and cut into packs of at most
K, as even as the group allows. Tune runs one trial per pack, whose config holds its members'
configs (:data:`MEMBERS_KEY`, as JSON: Tune would resolve lists and dicts of a config itself);
its reports carry each member's metrics under ``members``. :class:`~abl.search.sinks.SinkCallback`
fans a pack trial out into its members, ``<pack trial id>.<index>``, so trials.parquet,
history.parquet, MLflow and the terminal see K trials, and the report is unchanged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

MEMBERS_KEY = "abl.pack"  # a pack trial's config: its members' full configs, as JSON
MEMBERS_RESULT = "members"  # a pack trial's report: {member index: that member's metrics}


def pack_points(configs: Sequence[dict[str, Any]], size: int) -> list[dict[str, str]]:
    """The trial configs Tune runs for ``configs`` packed ``size`` at most: one per pack."""
    from abl.space.variants import packs

    return [{MEMBERS_KEY: json.dumps(members)} for members in packs(configs, size)]


def members_of(config: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """A pack trial's members' configs; None for a trial that is no pack."""
    raw = config.get(MEMBERS_KEY)
    return None if raw is None else list(json.loads(raw))


def member_id(pack_id: str, index: int) -> str:
    """The trial id member ``index`` of pack trial ``pack_id`` has downstream."""
    return f"{pack_id}.{index}"


def pack_of(trial_id: str) -> str:
    """The Tune trial a trial id belongs to: its pack's for a member, else itself (Tune's own
    trial ids have no dot)."""
    return trial_id.rsplit(".", 1)[0]


def member_results(result: Mapping[str, Any]) -> dict[int, dict[str, Any]] | None:
    """Each member's report in one report of a pack trial, as a lone trial's report would
    be (its own metrics, the pack's Ray keys); None when ``result`` is no pack's."""
    from abl.search.sinks.base import RAY_KEYS

    members = result.get(MEMBERS_RESULT)
    if not isinstance(members, Mapping):
        return None
    shared = {k: v for k, v in result.items() if k in RAY_KEYS}
    return {int(i): {**shared, **metrics} for i, metrics in members.items()}


def tune_statuses(
    errored: set[str], unfinished: set[str], ended: set[str]
) -> tuple[set[str], set[str], set[str]]:
    """The store's trial statuses as Tune's trials have them: a pack trial is unfinished while
    one of its members is, else errored if one of them errored, else ended."""
    live = {pack_of(t) for t in unfinished}
    failed = {pack_of(t) for t in errored} - live
    done = {pack_of(t) for t in ended} - live - failed
    return failed, live, done


def run_pack_trial(
    members: list[dict[str, Any]], trainable: Any, metric: str, mode: str, rungs: str | None = None
) -> None:
    """Ray Tune function trainable of a pack: threads and device from Ray's assignment, the
    pack's checkpoints to Tune, one report per epoch with every member's metrics (and, as
    Tune wants the sweep's ``metric`` in every report, its best member's value of it).

    With ``rungs`` (the name of the sweep's :class:`~abl.search._asha.MemberRungs` actor),
    ASHA decides after each epoch which members stop: their report says ``pruned`` and they
    leave the pack's stack, which then trains only the others."""
    import ray
    import torch
    from ray import tune

    from abl.search.sinks.base import STATUS_KEY
    from abl.trainables.loop import assigned_device, tune_restore
    from abl.trainables.metrics import STEP_KEY
    from abl.trainables.pack import train_pack

    resources = ray.get_runtime_context().get_assigned_resources()
    torch.set_num_threads(max(1, int(resources.get("CPU", 1))))
    device = assigned_device(ray.get_gpu_ids())
    on_cuda = float(device.startswith("cuda"))

    pack_id = tune.get_context().get_trial_id()
    keeper = ray.get_actor(rungs) if rungs else None

    def report(metrics: list[dict[str, Any] | None], ckpt_dir: str | None) -> list[int]:
        live = {str(i): {**m, "perf/cuda": on_cuda} for i, m in enumerate(metrics) if m}
        stops: dict[str, str] = {}
        if keeper is not None:
            asked = {
                member_id(pack_id, int(i)): {
                    "training_iteration": m.get("epoch", 0),
                    **{k: m[k] for k in (metric, STATUS_KEY) if k in m},
                }
                for i, m in live.items()
            }
            stops = ray.get(keeper.decide.remote(asked))
            for member, status in stops.items():
                live[member.rsplit(".", 1)[1]][STATUS_KEY] = status
        values = [m[metric] for m in live.values() if isinstance(m.get(metric), float)]
        finite = [v for v in values if math.isfinite(v)]
        best = (min(finite) if mode == "min" else max(finite)) if finite else math.nan
        top: dict[str, Any] = {metric: best, "pack/size": len(live)}
        steps = [m[STEP_KEY] for m in live.values() if STEP_KEY in m]
        if steps:
            top[STEP_KEY] = max(steps)
        ckpt = tune.Checkpoint.from_directory(ckpt_dir) if ckpt_dir else None
        tune.report({**top, MEMBERS_RESULT: live}, checkpoint=ckpt)
        return [int(member.rsplit(".", 1)[1]) for member in stops]

    restore = tune_restore(device)
    train_pack(members, trainable=trainable, report=report, restore=restore, device=device)
