"""Trial packs: each member reports what its trial reports alone (loop.train), epoch by epoch."""

from __future__ import annotations

import math
import os
from typing import Any

import pytest
import torch

from abl.errors import AblError
from abl.trainables.loop import CHECKPOINT_FILE, train
from abl.trainables.models import MODELS
from abl.trainables.pack import (
    PER_MEMBER_KEYS,
    StackedAdamW,
    check_packable,
    pack_key,
    train_pack,
)
from abl.trainables.spec import TRAINABLES
from abl.trainables.tasks import TASKS

EPOCHS = 2
# Three members apart in every per-member knob: seed, lr, clip (0 = none), warmup, schedule.
MEMBERS = [
    {"seed": 0, "train.lr": 1e-3, "train.grad_clip": 1.0},
    {"seed": 1, "train.lr": 3e-3, "train.grad_clip": 0.0, "train.warmup_steps": 2},
    {"seed": 2, "train.lr": 1e-2, "train.grad_clip": 0.5, "train.schedule": "constant"},
]
RTOL, ATOL = 1e-4, 1e-6


def config_of(name: str, kind: str, **extra: Any) -> dict[str, Any]:
    """A tiny trial: smoke data and model, two steps an epoch."""
    spec = TRAINABLES.get(name)
    smoke = {**TASKS.get(spec.task).smoke, **MODELS.get(kind).smoke}
    fast = {"train.epochs": EPOCHS, "train.steps_per_epoch": 2, "train.batch_size": 16}
    if "data.val_samples" in spec.schema(kind):  # the symbolic tasks: a smaller fixed val set
        fast["data.val_samples"] = 32
    return {**smoke, **fast, "model.kind": kind, "train.checkpoint_every_s": 0, **extra}


def solo(name: str, config: dict[str, Any]) -> list[dict[str, Any]]:
    """loop.train's reports of one trial."""
    out: list[dict[str, Any]] = []
    train(config, trainable=TRAINABLES.get(name), report=lambda m, _c: out.append(m))
    return out


def packed(
    name: str,
    configs: list[dict[str, Any]],
    *,
    stop: dict[int, set[int]] | None = None,
    restore: dict[str, Any] | None = None,
) -> tuple[list[list[dict[str, Any] | None]], dict[int, dict[str, Any]]]:
    """Every report of a pack (one list per epoch) and its checkpoint by epoch; ``stop`` maps an
    epoch to the members its report stops."""
    spec = TRAINABLES.get(name)
    reports: list[list[dict[str, Any] | None]] = []
    states: dict[int, dict[str, Any]] = {}

    def report(metrics: list[dict[str, Any] | None], ckpt: str | None) -> set[int]:
        epoch = next(m["epoch"] for m in metrics if m is not None)
        reports.append(metrics)
        if ckpt is not None:
            states[epoch] = torch.load(os.path.join(ckpt, CHECKPOINT_FILE), weights_only=False)
        return (stop or {}).get(epoch, set())

    full = [spec.resolve(c, "test") for c in configs]
    train_pack(full, trainable=spec, report=report, restore=restore)
    return reports, states


def assert_close(alone: dict[str, Any], member: dict[str, Any]) -> None:
    """Same keys; equal values, floats to tolerance (perf/* are timings)."""
    assert alone.keys() == member.keys()
    for key, value in alone.items():
        if key.startswith("perf/"):
            continue
        if isinstance(value, float):
            assert member[key] == pytest.approx(value, rel=RTOL, abs=ATOL, nan_ok=True), key
        else:
            assert member[key] == value, key


def member_reports(reports: list[list[dict[str, Any] | None]], i: int) -> list[dict[str, Any]]:
    return [epoch[i] for epoch in reports if epoch[i] is not None]


REFUSED = {"lstm"}  # nn.LSTM has no vmap batching rule
PAIRS = [(n, k) for n in TRAINABLES.names() for k in TRAINABLES.get(n).models]
PACKABLE = [(n, k) for n, k in PAIRS if k not in REFUSED]


@pytest.mark.parametrize(("name", "kind"), PACKABLE, ids=[f"{n}-{k}" for n, k in PACKABLE])
def test_each_member_reports_what_its_trial_reports_alone(name: str, kind: str) -> None:
    configs = [config_of(name, kind, **m) for m in MEMBERS]
    reports, _ = packed(name, configs)
    assert len(reports) == EPOCHS
    for i, config in enumerate(configs):
        alone = solo(name, config)
        mine = member_reports(reports, i)
        assert len(mine) == len(alone) == EPOCHS
        for a, b in zip(alone, mine, strict=True):
            assert_close(a, b)
        assert mine[-1]["trial/status"] == "completed"


def refusal(name: str, configs: list[dict[str, Any]]) -> str:
    """check_packable's message for resolved ``configs``, which must be one line."""
    spec = TRAINABLES.get(name)
    with pytest.raises(AblError) as info:
        check_packable([spec.resolve(c, "test") for c in configs], spec)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("name", "kind"), [p for p in PAIRS if p[1] in REFUSED], ids=lambda v: str(v)
)
def test_a_kind_that_cannot_run_under_vmap_is_refused_by_name(name: str, kind: str) -> None:
    message = refusal(name, [config_of(name, kind, **m) for m in MEMBERS])
    assert f"model.kind {kind} cannot be packed" in message


@pytest.mark.parametrize(
    ("name", "setting"),
    [
        ("charlm", {"model.kind": "gpt", "model.dropout": 0.1}),
        ("copy", {"model.latent_noise": 0.5}),
        ("copy", {"model.dropout": 0.1}),
        ("icl_linreg", {"model.use_lstm_layer": True}),
        ("forecast", {"train.restart_on_spike": 2.0}),
    ],
    ids=lambda v: str(v),
)
def test_a_setting_a_pack_cannot_reproduce_is_refused(name: str, setting: dict[str, Any]) -> None:
    kind = setting.get("model.kind", TRAINABLES.get(name).default_model)
    message = refusal(name, [config_of(name, kind, **m, **setting) for m in MEMBERS])
    key = next(k for k in setting if k != "model.kind")
    assert key in message


def test_configs_that_differ_outside_the_per_member_keys_are_refused() -> None:
    configs = [config_of("forecast", "att", **m) for m in MEMBERS]
    configs[2]["model.d_model"] = 16
    message = refusal("forecast", configs)
    assert "config 2" in message and "model.d_model" in message
    spec = TRAINABLES.get("forecast")
    keys = [pack_key(spec.resolve(c, "test")) for c in configs]
    assert keys[0] == keys[1] != keys[2]
    assert {"seed", "train.lr", "train.grad_clip"} <= PER_MEMBER_KEYS


def test_a_diverged_member_reports_once_and_the_others_go_on() -> None:
    huge = {"train.lr": 1e6, "train.grad_clip": 0.0, "train.warmup_steps": 0}  # inf in epoch 1
    configs = [config_of("forecast", "att", **m) for m in MEMBERS]
    configs[1].update(huge)
    reports, _ = packed("forecast", configs)
    assert len(reports) == EPOCHS
    diverged = member_reports(reports, 1)
    assert [m["trial/status"] for m in diverged] == ["diverged"]
    assert [epoch[1] for epoch in reports][1:] == [None] * (EPOCHS - 1)
    alone = solo("forecast", configs[1])
    assert [m["trial/status"] for m in alone] == ["diverged"]
    assert alone[0].keys() == diverged[0].keys()
    for key in ("train/loss", "val/loss", "val/loss_last"):  # inf or nan, as rounding goes
        assert math.isfinite(alone[0][key]) == math.isfinite(diverged[0][key]), key
    for i in (0, 2):
        for a, b in zip(solo("forecast", configs[i]), member_reports(reports, i), strict=True):
            assert_close(a, b)


def test_a_member_the_report_stops_reports_no_more_and_the_others_go_on() -> None:
    configs = [config_of("charlm", "bigram_mf", **m, **{"train.epochs": 3}) for m in MEMBERS]
    reports, _ = packed("charlm", configs, stop={1: {1}})
    assert [epoch[1] is None for epoch in reports] == [False, True, True]
    for i in (0, 2):
        alone = solo("charlm", configs[i])
        for a, b in zip(alone, member_reports(reports, i), strict=True):
            assert_close(a, b)


def without_perf(reports: list[list[dict[str, Any] | None]]) -> list[list[Any]]:
    return [
        [
            None if m is None else {k: v for k, v in m.items() if not k.startswith("perf/")}
            for m in e
        ]
        for e in reports
    ]


def test_a_restored_pack_continues_as_the_uninterrupted_one() -> None:
    """The checkpoint of epoch 1 restores weights, moments, generators, curricula and the
    stop mask (member 1 diverged in epoch 1): the rest is bitwise what the pack reported."""
    configs = [config_of("icl_linreg", "looped", **m, **{"train.epochs": 3}) for m in MEMBERS]
    configs[1].update({"train.lr": 1e6, "train.grad_clip": 0.0, "train.warmup_steps": 0})
    full, states = packed("icl_linreg", configs)
    assert states[1]["active"] == [0, 2]
    rest, _ = packed("icl_linreg", configs, restore=states[1])
    assert [e[0]["epoch"] for e in rest] == [2, 3]
    assert without_perf(rest) == without_perf(full[1:])


def test_stacked_adamw_steps_each_row_as_torch_adamw_steps_it_alone() -> None:
    """Bitwise, with each row's own learning rate (a schedule) and weight decay."""
    gen = torch.Generator().manual_seed(0)
    rows, steps = 3, 4
    start = torch.randn(rows, 50, generator=gen)
    grads = [torch.randn(rows, 50, generator=gen) for _ in range(steps)]
    lrs = [[1e-3 * (r + 1) * (s + 1) for r in range(rows)] for s in range(steps)]
    wds = [0.0, 0.1, 0.01]
    stacked = StackedAdamW(
        lrs=lrs,
        weight_decay=wds,
        exp_avg=torch.zeros_like(start),
        exp_avg_sq=torch.zeros_like(start),
    )
    flat = start.clone()
    for grad in grads:
        stacked.step(flat, grad)
    for r in range(rows):
        param = torch.nn.Parameter(start[r].clone())
        opt = torch.optim.AdamW([param], lr=lrs[0][r], weight_decay=wds[r])
        for s, grad in enumerate(grads):
            opt.param_groups[0]["lr"] = lrs[s][r]
            param.grad = grad[r].clone()
            opt.step()
        assert torch.equal(param.detach(), flat[r]), r


def test_flops_per_sample_are_counted_alike_solo_and_packed(monkeypatch) -> None:
    # perf/flops_per_s over perf/samples_per_s is the FLOPs of one sample's forward and backward:
    # a pack's job does K members' samples, so its ratio is K times one solo trial's
    monkeypatch.setenv("ABL_PEAK_FLOPS", "1e12")
    configs = [config_of("forecast", "att", **m) for m in MEMBERS]
    alone = solo("forecast", configs[0])[-1]
    member = packed("forecast", configs)[0][-1][0]
    per_sample = alone["perf/flops_per_s"] / alone["perf/samples_per_s"]
    assert per_sample > 0
    assert member["perf/flops_per_s"] / member["perf/samples_per_s"] == pytest.approx(
        len(MEMBERS) * per_sample, rel=1e-6
    )
    assert alone["perf/mfu"] == pytest.approx(alone["perf/flops_per_s"] / 1e12)
    monkeypatch.delenv("ABL_PEAK_FLOPS")
    assert "perf/mfu" not in solo("forecast", configs[0])[-1]  # no peak known on a CPU


# train.precision and train.compile, on two kinds with attention (SDPA), the rest as above.
OPTIONS = [
    # bf16 rounds the batched matmuls of a pack apart from a solo trial's: bf16's precision
    ({"train.precision": "bf16"}, 2e-2),
    # aot_eager: torch.compile's tracing and autograd, no C++ compiler (inductor's is tested
    # in the bench); the compiled vmapped step computes what the eager one does
    ({"train.compile": True, "train.compile_backend": "aot_eager"}, RTOL),
]


@pytest.mark.parametrize(("name", "kind"), [("forecast", "att"), ("charlm", "gpt")])
@pytest.mark.parametrize(("option", "rtol"), OPTIONS, ids=["bf16", "compile"])
def test_members_match_their_trials_alone_in_bf16_and_compiled(
    name: str, kind: str, option: dict[str, Any], rtol: float
) -> None:
    from torch._dynamo.utils import counters  # dynamo's own tally of the graphs it compiled

    configs = [config_of(name, kind, **m, **option) for m in MEMBERS[:2]]
    counters.clear()
    reports, _ = packed(name, configs)
    assert (counters["stats"]["unique_graphs"] > 0) == ("train.compile" in option)
    for i, config in enumerate(configs):
        for a, b in zip(solo(name, config), member_reports(reports, i), strict=True):
            for key in ("train/loss", "val/loss"):
                assert b[key] == pytest.approx(a[key], rel=rtol), key
