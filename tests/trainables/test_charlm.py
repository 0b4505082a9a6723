"""The char-LM task (built-in corpus, windows, text files) and the bigram family on it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from abl.errors import AblError
from abl.trainables.config import build
from abl.trainables.loop import train
from abl.trainables.models import MODELS
from abl.trainables.models.bigram import BigramAttention
from abl.trainables.spec import TRAINABLES
from abl.trainables.tasks.base import TaskInfo
from abl.trainables.tasks.charlm import CharLMTask, builtin_corpus

BIGRAM_KINDS = ("bigram", "bigram_mf", "bigram_att")
PE_TYPES = ("randn", "sinpe", "rope")


def task(seed: int = 0, data_seed: int = 0, **values: Any) -> CharLMTask:
    """A charlm task of trial seed ``seed`` and ``data.seed`` = ``data_seed``."""
    values = {"seed": data_seed, **values}
    return CharLMTask(build(CharLMTask.Config, values, section="data"), seed=seed)


def model(kind: str, info: TaskInfo, **values: Any) -> torch.nn.Module:
    cls = MODELS.get(kind)
    return cls(build(cls.Config, {**cls_smoke(kind), **values}, section="model"), info)


def cls_smoke(kind: str) -> dict[str, Any]:
    """The model's smoke overrides without the ``model.`` prefix."""
    return {k.removeprefix("model."): v for k, v in MODELS.get(kind).smoke.items()}


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "poem.txt"
    path.write_text("the cat sat on the mat; ünïcode too.\n" * 20, encoding="utf-8")
    return path


def test_builtin_corpus_is_deterministic_and_non_trivial() -> None:
    first = builtin_corpus()
    builtin_corpus.cache_clear()
    second = builtin_corpus()
    assert first == second
    assert 200_000 < len(first) < 2_000_000
    assert len(set(first)) > 60
    assert "the" in first and "def" in first
    assert builtin_corpus() is second  # cached in-process


def test_vocab_and_info_come_from_the_text() -> None:
    t = task(block_size=24)
    assert t.chars == "".join(sorted(set(builtin_corpus())))
    assert t.info == TaskInfo(vocab_size=len(t.chars), block_size=24)


def test_same_seed_same_batches_and_targets_shifted_by_one() -> None:
    a, b = task(seed=3, block_size=16), task(seed=3, block_size=16)
    gen_a, gen_b = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    for (xa, ya), (xb, yb) in zip(
        a.batches("train", 8, generator=gen_a), b.batches("train", 8, generator=gen_b), strict=True
    ):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    x, y = next(iter(a.batches("train", 8, generator=torch.Generator().manual_seed(7))))
    assert x.dtype == y.dtype == torch.long and x.shape == y.shape == (8, 16)
    assert torch.equal(x[:, 1:], y[:, :-1])
    # Each row is a real window of the training text: y ends one character further on.
    row = a.decode(x[0]) + a.decode(y[0])[-1]
    assert row in a.text[: a.n_train]


def test_val_windows_are_fixed_per_data_seed_whatever_the_generator() -> None:
    t = task(seed=1, block_size=8, val_batches=3)
    first = torch.cat([x for x, _ in t.batches("val", 4)])
    again = torch.cat([x for x, _ in t.batches("val", 4, generator=torch.Generator())])
    assert torch.equal(first, again) and first.shape == (12, 8)

    def val(**seeds: int) -> torch.Tensor:
        return torch.cat(
            [x for x, _ in task(block_size=8, val_batches=3, **seeds).batches("val", 4)]
        )

    assert torch.equal(first, val(seed=2))  # another trial seed: the same windows
    assert not torch.equal(first, val(seed=1, data_seed=2))
    val_text = t.text[t.n_train :]
    assert all(t.decode(row) in val_text for row in first)


def test_num_batches_counts_without_generating() -> None:
    t = task(epoch_batches=7, val_batches=3)
    assert t.num_batches("train", 5) == 7 == sum(1 for _ in t.batches("train", 5))
    assert t.num_batches("val", 5) == 3 == sum(1 for _ in t.batches("val", 5))


def test_loss_is_cross_entropy_over_the_vocabulary() -> None:
    t = task(block_size=8)
    _, y = next(iter(t.batches("train", 4)))
    uniform = torch.zeros(4, 8, t.info.vocab_size)
    assert math.isclose(t.loss(uniform, y).item(), math.log(t.info.vocab_size), rel_tol=1e-5)


def test_text_file_as_data_path(text_file: Path) -> None:
    t = task(path=str(text_file), block_size=10, val_fraction=0.2)
    text = text_file.read_text(encoding="utf-8")
    assert t.text == text and t.chars == "".join(sorted(set(text)))
    assert t.info.vocab_size == len(set(text)) and "ü" in t.chars
    assert t.n_train == len(text) - round(len(text) * 0.2)
    x, y = next(iter(t.batches("train", 4)))
    assert t.decode(x[0]) + t.decode(y[0])[-1] in text


def test_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(AblError, match=r"nope\.txt.*data\.path"):
        task(path=str(tmp_path / "nope.txt"))


def test_non_utf8_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9 ".encode("latin-1") * 100)
    with pytest.raises(AblError, match=r"UTF-8.*latin1\.txt.*data\.path"):
        task(path=str(path))


def test_text_too_short_for_the_block_size(text_file: Path) -> None:
    with pytest.raises(AblError, match=r"block_size \+ 1 = 201.*poem\.txt"):
        task(path=str(text_file), block_size=200)


@pytest.mark.parametrize(
    ("key", "value"),
    [("block_size", 0), ("val_fraction", 1.0), ("epoch_batches", 0), ("val_batches", 0)],
)
def test_bad_config_values(key: str, value: Any) -> None:
    with pytest.raises(AblError, match=rf"{key} must be.*data\.{key}"):
        task(**{key: value})


@pytest.mark.parametrize("kind", BIGRAM_KINDS)
def test_bigram_family_forward_backward(kind: str) -> None:
    t = task(block_size=12)
    m = model(kind, t.info)
    x, y = next(iter(t.batches("train", 3)))
    logits = m(x)
    assert logits.shape == (3, 12, t.info.vocab_size)
    loss = t.loss(logits, y)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    assert m(x[:, :5]).shape == (3, 5, t.info.vocab_size)  # shorter contexts are fine


@pytest.mark.parametrize("pe_type", PE_TYPES)
def test_bigram_attention_is_causal(pe_type: str) -> None:
    torch.manual_seed(0)
    info = TaskInfo(vocab_size=11, block_size=10)
    m = model("bigram_att", info, pe_type=pe_type).eval()
    x = torch.randint(11, (2, 10))
    for t in (0, 4, 8):
        changed = x.clone()
        changed[:, t + 1 :] = (changed[:, t + 1 :] + 1) % 11
        with torch.no_grad():
            before, after = m(x), m(changed)
        assert torch.allclose(before[:, : t + 1], after[:, : t + 1], atol=1e-6)
        assert not torch.allclose(before[:, t + 1 :], after[:, t + 1 :], atol=1e-4)


def test_position_tables_and_rope_adds_none() -> None:
    info = TaskInfo(vocab_size=11, block_size=10)
    tables = {pe: model("bigram_att", info, pe_type=pe, n_embd=8).pe for pe in PE_TYPES}
    assert tables["rope"] is None
    assert "pe" not in model("bigram_att", info, pe_type="rope").state_dict()
    for pe in ("randn", "sinpe"):
        table = tables[pe]
        assert table is not None and table.shape == (10, 8)
    # The random table has the sinusoidal table's scale (per-entry variance 1/2).
    big = model("bigram_att", TaskInfo(vocab_size=5, block_size=512), n_embd=64).pe
    assert big is not None and abs(big.var().item() - 0.5) < 0.05


def test_bigram_attention_rejects_what_it_cannot_serve() -> None:
    info = TaskInfo(vocab_size=11, block_size=10)
    with pytest.raises(AblError, match=r"even.*model\.n_embd"):
        BigramAttention(
            build(BigramAttention.Config, {"n_embd": 7, "pe_type": "rope"}, section="model"), info
        )
    with pytest.raises(AblError, match=r"block_size \(10\); got 11"):
        model("bigram_att", info)(torch.zeros(1, 11, dtype=torch.long))
    with pytest.raises(AblError, match=r"vocab_size"):
        model("bigram", TaskInfo(input_dim=3, block_size=10))


@pytest.mark.parametrize("kind", BIGRAM_KINDS)
def test_one_epoch_end_to_end(kind: str) -> None:
    reports: list[dict[str, Any]] = []

    def collect(metrics: dict[str, Any], _ckpt: str | None) -> None:
        reports.append(metrics)

    config = {**CharLMTask.smoke, **MODELS.get(kind).smoke, "model.kind": kind}
    config.update({"train.epochs": 1, "train.batch_size": 8})
    train(config, trainable=TRAINABLES.get("charlm"), report=collect)
    assert len(reports) == 1 and reports[0]["trial/status"] == "completed"
    assert math.isfinite(reports[0]["val/loss"]) and reports[0]["model/params"] > 0
