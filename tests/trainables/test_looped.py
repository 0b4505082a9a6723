"""The looped transformer and in-context linear regression (logbook 004): gradient window,
n_last_tokens mask, causality, curricula, seeded data, and one epoch through the shared loop."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import Tensor

from abl.errors import AblError
from abl.trainables.config import build
from abl.trainables.loop import train
from abl.trainables.models.looped import LoopedTransformer
from abl.trainables.spec import TRAINABLES
from abl.trainables.tasks.base import TaskInfo
from abl.trainables.tasks.linreg import LinearRegressionTask, interleave

INFO = TaskInfo(input_dim=5, output_dim=1, block_size=16)
SMALL = {"n_embd": 16, "n_head": 2}


def looped(info: TaskInfo = INFO, **values: Any) -> LoopedTransformer:
    """A small model with weights drawn large enough that every loop visibly moves the state
    (at the GPT-2 initialisation the blocks are near the identity and the loop is near a fixed
    point, which would hide what the state carries)."""
    torch.manual_seed(0)
    cfg = build(LoopedTransformer.Config, {**SMALL, **values}, section="model")
    model = LoopedTransformer(cfg, info)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model


def fixed_loops(n: int, **values: Any) -> LoopedTransformer:
    return looped(n_loop_start=n, n_loop_end=n, **values)


def linreg(seed: int = 0, data_seed: int = 0, **values: Any) -> LinearRegressionTask:
    """A linreg task of trial seed ``seed`` and ``data.seed`` = ``data_seed``."""
    values = {"seed": data_seed, **values}
    return LinearRegressionTask(
        build(LinearRegressionTask.Config, values, section="data"), seed=seed
    )


def record_states(model: LoopedTransformer) -> list[Tensor]:
    """Make ``model`` keep the state after every loop, with its gradient retained."""
    states: list[Tensor] = []
    step = model.loop_step

    def spy(state: Tensor, inject: Tensor, keep: Tensor) -> Tensor:
        out = step(state, inject, keep)
        if out.requires_grad:
            out.retain_grad()
        states.append(out)
        return out

    model.loop_step = spy  # type: ignore[method-assign]
    return states


@pytest.mark.parametrize("lstm", [False, True])
@pytest.mark.parametrize(("window", "expected"), [(2, [False] * 4 + [True] * 2), (6, [True] * 6)])
def test_only_the_last_window_loops_get_gradient(
    lstm: bool, window: int, expected: list[bool]
) -> None:
    model = fixed_loops(6, n_loop_window=window, use_lstm_layer=lstm)
    states = record_states(model)
    model(torch.randn(3, 8, 5)).sum().backward()
    assert [s.grad is not None for s in states] == expected


def test_window_gradient_equals_detaching_the_state_before_the_window() -> None:
    x = torch.randn(3, 8, 5)
    model = fixed_loops(5, n_loop_window=2)
    model(x).square().mean().backward()
    got = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    inject, keep = model.read_in(x), model.keep_mask(8)
    state = torch.zeros_like(inject)
    for i in range(5):
        state = model.loop_step(state.detach() if i == 3 else state, inject, keep)
    model.read_out(state).square().mean().backward()
    for g, p in zip(got, model.parameters(), strict=True):
        assert torch.allclose(g, p.grad, atol=1e-6)
    full = fixed_loops(5, n_loop_window=5)
    full(x).square().mean().backward()
    assert not all(torch.allclose(g, p.grad) for g, p in zip(got, full.parameters(), strict=True))


def test_loss_every_loop_stacks_the_window_in_training_only() -> None:
    x = torch.randn(3, 8, 5)
    model = fixed_loops(5, n_loop_window=2, loss_every_loop=True)
    stacked = model(x)
    assert stacked.shape == (2 * 3, 8, 1)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(x), stacked[3:], atol=1e-6)  # the last loop's chunk
    task = linreg(n_dims=4, dims_start=4, dims_end=4, points_start=4, points_end=4)
    y = torch.randn(3, 4, 1)
    per_loop = [task.loss(stacked[i * 3 : (i + 1) * 3], y) for i in range(2)]
    assert torch.allclose(task.loss(stacked, y), sum(per_loop) / 2)


@pytest.mark.parametrize(
    ("n_last", "kept"), [(3, [5, 6, 7]), (0, []), (-1, list(range(8))), (20, list(range(8)))]
)
def test_n_last_tokens_keeps_only_the_state_of_the_last_positions(
    n_last: int, kept: list[int]
) -> None:
    model = looped(n_last_tokens=n_last).eval()
    assert model.keep_mask(8)[:, 0].nonzero().flatten().tolist() == kept
    inject, state = torch.randn(2, 8, 16), torch.randn(2, 8, 16)
    with torch.no_grad():
        base = model.loop_step(state, inject, model.keep_mask(8))
        for pos in range(8):
            changed = state.clone()
            changed[:, pos] += torch.randn(2, 16)
            same = torch.allclose(model.loop_step(changed, inject, model.keep_mask(8)), base)
            assert same is (pos not in kept), f"position {pos}"


def test_without_kept_tokens_every_loop_sees_only_the_input() -> None:
    x = torch.randn(2, 8, 5)
    with torch.no_grad():
        one = fixed_loops(1, n_last_tokens=0).eval()(x)
        many = fixed_loops(7, n_last_tokens=0).eval()(x)
        many_kept = fixed_loops(7).eval()(x)
    assert torch.allclose(one, many, atol=1e-6)
    assert not torch.allclose(one, many_kept, atol=1e-3)


@pytest.mark.parametrize("lstm", [False, True])
@pytest.mark.parametrize("n_last", [-1, 3])
def test_later_tokens_do_not_change_earlier_predictions(lstm: bool, n_last: int) -> None:
    model = fixed_loops(4, use_lstm_layer=lstm, n_last_tokens=n_last).eval()
    x = torch.randn(2, 12, 5)
    changed = x.clone()
    changed[:, 7:] += torch.randn_like(changed[:, 7:])
    with torch.no_grad():
        a, b = model(x), model(changed)
    assert torch.allclose(a[:, :7], b[:, :7], atol=1e-6)
    assert not torch.allclose(a[:, 7:], b[:, 7:], atol=1e-4)


def test_curricula_follow_the_schedule() -> None:
    task = linreg(dims_start=5, dims_end=10, dims_inc=1, dims_interval=2000)  # points 11 -> 41
    expected = {
        0: (5, 11),
        999: (5, 11),
        1000: (5, 13),
        2000: (6, 15),
        14999: (10, 39),
        30000: (10, 41),
    }
    assert {s: task.curriculum(s) for s in expected} == expected
    model = LoopedTransformer(build(LoopedTransformer.Config, {}, section="model"), task.info)
    loops = {}
    for step in (0, 499, 500, 3999, 4000, 9000):
        model.set_step(step)
        loops[step] = model.n_loop
    assert loops == {0: 15, 499: 15, 500: 17, 3999: 29, 4000: 30, 9000: 30}
    model.set_step(0)
    assert model.eval().n_loop == 30  # evaluation runs n_loop_end


def test_batches_use_the_step_after_the_last_set_step() -> None:
    task = linreg()
    batches = iter(task.batches("train", 4))
    x, y = next(batches)  # drawn before set_step(0): step 0
    assert x.shape == (4, 22, 11) and y.shape == (4, 11, 1)
    task.set_step(0)
    task.set_step(999)
    x, _ = next(batches)  # the loop's step 1000
    assert x.shape == (4, 26, 11)
    val, _ = next(iter(task.batches("val", 4)))
    assert val.shape == (4, 82, 11)
    assert task.info == TaskInfo(input_dim=11, output_dim=1, block_size=82)


def test_prompts_are_linear_in_the_active_dimensions() -> None:
    task = linreg(n_dims=6, dims_start=3, dims_end=6, points_start=9, points_end=9)
    x, y = next(iter(task.batches("train", 5)))
    xs, ys = x[:, 0::2, :6], x[:, 1::2, 6:]
    assert torch.equal(ys, y) and torch.equal(interleave(xs, ys), x)
    assert (xs[:, :, 3:] == 0).all() and (x[:, 0::2, 6] == 0).all() and (x[:, 1::2, :6] == 0).all()
    w = torch.linalg.lstsq(xs[:, :3, :3], ys[:, :3]).solution  # 3 points pin w down
    assert torch.allclose(xs[:, :, :3] @ w, ys, atol=1e-3)


def test_same_seed_same_data_and_fixed_validation() -> None:
    a, b = linreg(seed=4, epoch_batches=3), linreg(seed=4, epoch_batches=3)
    for split in ("train", "val"):
        for (xa, ya), (xb, yb) in zip(a.batches(split, 8), b.batches(split, 8), strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    gen_a, gen_b = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    assert torch.equal(
        next(iter(a.batches("train", 8, generator=gen_a)))[0],
        next(iter(b.batches("train", 8, generator=gen_b)))[0],
    )
    first_epoch = next(iter(a.batches("val", 8)))[0]
    list(a.batches("train", 8, generator=gen_a))  # training draws do not move validation
    assert torch.equal(first_epoch, next(iter(a.batches("val", 8)))[0])
    assert torch.equal(first_epoch, next(iter(linreg(seed=5).batches("val", 8)))[0])
    other_data = linreg(seed=4, data_seed=5)
    assert not torch.equal(first_epoch, next(iter(other_data.batches("val", 8)))[0])
    assert a.num_batches("train", 8) == 3 and a.num_batches("val", 8) == 8


class Zero(torch.nn.Module):
    """Predicts 0 everywhere: its error per dimension is E[y^2] / d = 1 in expectation."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.zeros(*x.shape[:2], 1)


def test_epoch_metrics_normalise_by_the_dimension() -> None:
    task = linreg(n_dims=8, dims_start=8, dims_end=8, points_end=21, val_batches=16)
    metrics = task.epoch_metrics(Zero())
    ys = torch.cat([y for _, y in task.batches("val", 64)])[..., 0]
    assert math.isclose(metrics["val/mse_per_dim"], float(ys.square().mean() / 8), rel_tol=1e-5)
    assert math.isclose(
        metrics["val/mse_last_point"], float(ys[:, -1].square().mean() / 8), rel_tol=1e-5
    )
    assert 0.8 < metrics["val/mse_per_dim"] < 1.2
    assert set(metrics) == set(task.metrics)


def test_lstm_variant_trains() -> None:
    model = fixed_loops(3, use_lstm_layer=True, n_layer=2)
    out = model(torch.randn(2, 9, 5))
    assert out.shape == (2, 9, 1)
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert not any("wpe" in name for name, _ in model.named_parameters())


def test_knobs_it_cannot_serve_are_errors() -> None:
    with pytest.raises(AblError, match=r"n_head.*model\.n_head"):
        looped(n_embd=16, n_head=3)
    with pytest.raises(AblError, match=r"model\.n_loop_window"):
        looped(n_loop_window=0)
    with pytest.raises(AblError, match=r"model\.n_loop_\*"):
        looped(n_loop_start=30, n_loop_end=15, n_loop_inc=2)
    with pytest.raises(AblError, match=r"data\.dims_start, data\.dims_end"):
        linreg(n_dims=5, dims_end=10)
    with pytest.raises(AblError, match=r"block_size"):
        looped(info=TaskInfo(input_dim=5, output_dim=1, block_size=4))(torch.randn(1, 6, 5))


@pytest.mark.parametrize(
    "model", [{}, {"model.use_lstm_layer": True, "model.loss_every_loop": True}]
)
def test_one_epoch_through_the_shared_loop(model: dict[str, Any]) -> None:
    reports: list[dict[str, Any]] = []
    config = {**LinearRegressionTask.smoke, **LoopedTransformer.smoke, **model, "train.epochs": 1}
    train(
        config,
        trainable=TRAINABLES.get("icl_linreg"),
        report=lambda metrics, _ckpt: reports.append(metrics),
    )
    (last,) = reports
    assert last["trial/status"] == "completed"
    for name in ("train/loss", "val/loss", *LinearRegressionTask.metrics):
        assert math.isfinite(last[name]), name
