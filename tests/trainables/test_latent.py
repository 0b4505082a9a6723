"""The symbolic tasks (copy, flip, roll, addition), their curriculum, and the latent thinker."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from abl.errors import AblError
from abl.trainables.config import build
from abl.trainables.loop import train
from abl.trainables.models.latent import LatentThinker
from abl.trainables.spec import TRAINABLES
from abl.trainables.tasks.symbolic import AdditionTask, CopyTask, SymbolicTask

TASKS: dict[str, tuple[type[SymbolicTask], dict[str, Any]]] = {
    "copy": (CopyTask, {"variant": "copy", "seq_len": 8}),
    "flip": (CopyTask, {"variant": "flip", "seq_len": 8}),
    "roll": (CopyTask, {"variant": "roll", "seq_len": 8, "roll_by": 3}),
    "addition": (AdditionTask, {"max_value": 1000}),
}
SMALL = {"train_samples": 96, "val_samples": 40}


def make(name: str, seed: int = 0, **values: Any) -> SymbolicTask:
    cls, base = TASKS[name]
    return cls(build(cls.Config, {**base, **SMALL, **values}, section="data"), seed=seed)


def lengths_of(task: SymbolicTask, x: torch.Tensor) -> torch.Tensor:
    """String length (copy) or longest operand's digit count (addition) of each input row."""
    used = (x != task.pad_id).sum(1)
    if isinstance(task, AdditionTask):
        seps = (x == task.sep_id).long().argmax(1)
        return torch.maximum(seps, used - 1 - seps)
    return used


@pytest.mark.parametrize("name", TASKS)
def test_same_seed_same_data(name: str) -> None:
    a, b = make(name, seed=4), make(name, seed=4)
    for split in ("train", "val"):
        for (xa, ya), (xb, yb) in zip(a.batches(split, 32), b.batches(split, 32), strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    gen_a, gen_b = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    xa, _ = next(iter(a.batches("train", 32, generator=gen_a)))
    xb, _ = next(iter(b.batches("train", 32, generator=gen_b)))
    assert torch.equal(xa, xb)
    assert not torch.equal(xa, next(iter(make(name, seed=5).batches("val", 32)))[0])


@pytest.mark.parametrize("name", TASKS)
def test_shapes_and_full_length_validation(name: str) -> None:
    task = make(name, curriculum="progressive", len_start=1)
    x, y = next(iter(task.batches("val", 16)))
    assert x.dtype == y.dtype == torch.long
    assert x.shape == (16, task.info.block_size) and y.shape == (16, task.info.output_len)
    lengths = lengths_of(task, x)  # val ignores the curriculum
    assert int(lengths.max()) == task.full_len
    if name != "addition":  # an operand may have fewer digits than max_value
        assert bool((lengths == task.full_len).all())
    assert int(y.max()) < task.info.vocab_size and bool(((y == task.eos_id).sum(1) == 1).all())
    assert task.num_batches("train", 32) == len(list(task.batches("train", 32))) == 3


def test_copy_flip_roll_of_a_known_string() -> None:
    digits, length = torch.tensor([[5, 1, 2, 3, 9, 0, 0, 0]]), torch.tensor([5])
    pad, eos = 16, 17
    for name, body in [
        ("copy", [5, 1, 2, 3, 9]),
        ("flip", [9, 3, 2, 1, 5]),
        ("roll", [2, 3, 9, 5, 1]),  # rotated right by 3
    ]:
        x, y = make(name).encode(digits, length)
        assert x.tolist() == [[5, 1, 2, 3, 9, pad, pad, pad]]
        assert y.tolist() == [[*body, eos, pad, pad, pad]], name


def test_addition_in_base_16_of_known_numbers() -> None:
    task = make("addition")  # 1000 = 0x3e8 and 2000 = 0x7d0: 3 digits each
    assert (task.info.vocab_size, task.info.block_size, task.info.output_len) == (19, 7, 4)
    pad, eos, sep = 16, 17, 18
    x, y = task.encode(torch.tensor([1000, 255, 0]), torch.tensor([1, 1000, 0]))
    assert x.tolist() == [
        [3, 14, 8, sep, 1, pad, pad],
        [15, 15, sep, 3, 14, 8, pad],
        [0, sep, 0, pad, pad, pad, pad],
    ]
    assert y.tolist() == [[3, 14, 9, eos], [4, 14, 7, eos], [0, eos, pad, pad]]
    carry = make("addition", max_value=255)  # 0xff + 0xff = 0x1fe: one digit more
    x, y = carry.encode(torch.tensor([255]), torch.tensor([255]))
    assert x.tolist() == [[15, 15, sep, 15, 15]] and y.tolist() == [[1, 15, 14, eos]]


def decode(tokens: list[int], base: int) -> int:
    return sum(d * base**i for i, d in enumerate(reversed(tokens)))


def test_addition_samples_add_up() -> None:
    task = make("addition", curriculum="uniform")
    x, y = next(iter(task.batches("train", 64)))
    for row_x, row_y in zip(x.tolist(), y.tolist(), strict=True):
        sep, eos = row_x.index(task.sep_id), row_y.index(task.eos_id)
        a = decode(row_x[:sep], 16)
        b = decode([t for t in row_x[sep + 1 :] if t != task.pad_id], 16)
        assert 0 <= a <= 1000 and 0 <= b <= 1000
        assert decode(row_y[:eos], 16) == a + b


@pytest.mark.parametrize("name", TASKS)
def test_loss_ignores_pad_targets(name: str) -> None:
    task = make(name, curriculum="uniform")
    _, y = next(iter(task.batches("train", 16)))
    logits = torch.randn(*y.shape, task.info.vocab_size)
    changed = logits.clone()
    changed[y == task.pad_id] = torch.randn_like(changed[y == task.pad_id]) * 10
    assert torch.allclose(task.loss(logits, y), task.loss(changed, y))
    keep = y != task.pad_id
    assert torch.allclose(task.loss(logits, y), F.cross_entropy(logits[keep], y[keep]))


@pytest.mark.parametrize("name", TASKS)
def test_uniform_lengths_stay_in_range(name: str) -> None:
    task = make(name, curriculum="uniform", min_len=2, train_samples=512)
    lengths = torch.cat([lengths_of(task, x) for x, _ in task.batches("train", 128)])
    assert int(lengths.min()) >= 2 and int(lengths.max()) <= task.full_len
    if name != "addition":  # operands are uniform in value, so short ones are rare
        assert set(lengths.tolist()) == set(range(2, task.full_len + 1))


@pytest.mark.parametrize("name", ["copy", "addition"])
def test_progressive_raises_max_len_only_above_threshold(name: str) -> None:
    task = make(name, curriculum="progressive", len_start=1, len_inc=1, threshold=0.8)

    def longest() -> int:
        return int(max(lengths_of(task, x).max() for x, _ in task.batches("train", 32)))

    assert task.max_len == longest() == 1
    task.observe({"curriculum/acc_seq": 0.5, "val/acc_seq": 0.5})
    assert task.max_len == longest() == 1
    task.observe({"curriculum/acc_seq": 0.85})
    assert task.max_len == 2 and longest() <= 2
    for _ in range(3 * task.full_len):
        task.observe({"curriculum/acc_seq": 1.0})
    assert task.max_len == task.full_len


def test_none_curriculum_trains_at_full_length() -> None:
    task = make("flip", curriculum="none")
    x, _ = next(iter(task.batches("train", 32)))
    assert bool((lengths_of(task, x) == task.full_len).all())
    task.observe({"curriculum/acc_seq": 1.0})
    assert task.max_len == task.full_len


def test_bad_curriculum_settings_name_the_key() -> None:
    with pytest.raises(AblError, match=r"len_start.*data\.len_start"):
        make("copy", curriculum="progressive", len_start=9)
    with pytest.raises(AblError, match=r"min_len.*data\.min_len"):
        make("addition", min_len=4)


class Oracle(torch.nn.Module):
    """Answers a copy task perfectly: re-encodes the input's string as one-hot logits."""

    def __init__(self, task: CopyTask) -> None:
        super().__init__()
        self.task = task
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, y = self.task.encode(x, (x != self.task.pad_id).sum(1))
        return F.one_hot(y, self.task.info.vocab_size).float()


def test_epoch_metrics_of_a_perfect_and_a_fresh_model() -> None:
    task = make("roll", curriculum="progressive", len_start=3)
    assert isinstance(task, CopyTask)
    perfect = task.epoch_metrics(Oracle(task))
    assert set(perfect) == set(task.metrics)
    assert perfect["val/acc_token"] == perfect["val/acc_seq"] == perfect["curriculum/acc_seq"] == 1
    assert perfect["curriculum/max_len"] == 3
    fresh = task.epoch_metrics(latent(task, n_step=1))
    assert 0 <= fresh["val/acc_seq"] < 1 and 0 <= fresh["val/acc_token"] < 1


def latent(task: SymbolicTask, **values: Any) -> LatentThinker:
    torch.manual_seed(0)
    return LatentThinker(build(LatentThinker.Config, values, section="model"), task.info)


@pytest.mark.parametrize("name", TASKS)
def test_latent_forward_backward_shape(name: str) -> None:
    task = make(name)
    model = latent(task, d_model=16, n_head=2, n_latent=3, n_step=2)
    x, y = next(iter(task.batches("train", 8)))
    out = model(x)
    assert out.shape == (8, task.info.output_len, task.info.vocab_size)
    task.loss(out, y).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_n_step_changes_the_computation_with_the_same_weights() -> None:
    task = make("copy")
    model = latent(task, d_model=16, n_head=2, n_step=1).eval()
    x, _ = next(iter(task.batches("val", 4)))
    with torch.no_grad():
        one, two, default = model(x, n_step=1), model(x, n_step=2), model(x)
    assert torch.equal(one, default)
    assert not torch.allclose(one, two, atol=1e-4)


def test_latent_options_and_errors() -> None:
    task = make("addition")
    x, _ = next(iter(task.batches("val", 4)))
    bare = latent(task, mem_self_attn=False, dec_self_attn=False, n_dec_layer=1, latent_noise=0.1)
    assert bare(x).shape == (4, task.info.output_len, task.info.vocab_size)
    assert torch.equal(bare.eval()(x), bare(x))  # noise only while training
    with pytest.raises(AblError, match=r"n_head.*model\.n_head"):
        latent(task, d_model=30, n_head=4)
    with pytest.raises(AblError, match=r"n_step.*model\.n_step"):
        latent(task, n_step=0)


@pytest.mark.parametrize("trainable", ["copy", "addition"])
def test_one_epoch_of_the_loop_reports_finite_metrics(trainable: str) -> None:
    task_cls = CopyTask if trainable == "copy" else AdditionTask
    reports: list[dict[str, Any]] = []
    config = {**task_cls.smoke, **LatentThinker.smoke, "train.epochs": 1}
    train(config, trainable=TRAINABLES.get(trainable), report=lambda m, _ckpt: reports.append(m))
    (last,) = reports
    assert last["trial/status"] == "completed"
    assert set(task_cls.metrics) <= set(last)
    assert all(math.isfinite(last[k]) for k in ("train/loss", "val/loss", *task_cls.metrics))


def test_curriculum_state_survives_a_checkpoint():
    """A resumed trial continues its progressive curriculum instead of restarting it."""
    from abl.trainables.loop import build_run
    from abl.trainables.spec import TRAINABLES

    spec = TRAINABLES.get("copy")
    config = {"data.curriculum": "progressive", "data.len_start": 2, "data.len_inc": 2}
    run = build_run(config, spec)
    run.task.observe({"curriculum/acc_seq": 1.0, "val/acc_seq": 1.0})
    grown = run.task.max_len
    assert grown > 2
    run.epoch = 1
    resumed = build_run(config, spec)
    resumed.load(run.state())
    assert resumed.task.max_len == grown and resumed.epoch == 1
