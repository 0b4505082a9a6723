"""Every registered model: builds from its defaults, trains a step, and keeps the future out."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import torch

from abl.errors import AblError
from abl.trainables.config import build, knobs
from abl.trainables.loop import Run, SkipInit, build_run
from abl.trainables.models import MODELS
from abl.trainables.models.forecast import AttentionForecaster, rope_rotate, sinusoidal_table
from abl.trainables.spec import TRAINABLES
from abl.trainables.tasks import TASKS
from abl.trainables.tasks.base import TaskInfo

INFO = TaskInfo(input_dim=3, output_dim=2, block_size=16)


def make(name: str, **values: Any) -> torch.nn.Module:
    cls = MODELS.get(name)
    return cls(build(cls.Config, values, section="model"), INFO)


def _pairs() -> list[tuple[str, str]]:
    """(trainable, model kind) for every model of every registered trainable."""
    return [(t, kind) for t in TRAINABLES.names() for kind in TRAINABLES.get(t).models]


# The built-in ones, at import: tests elsewhere register trainables of their own (functions,
# without models) in the same worker process before this module's tests run.
BUILT_IN = _pairs()


def tiny(trainable: str, kind: str, **model: Any) -> Run:
    """A trial of ``kind`` on its trainable's task, made tiny by the task's and model's ``smoke``."""
    spec = TRAINABLES.get(trainable)
    config = {**TASKS.get(spec.task).smoke, **MODELS.get(kind).smoke, "model.kind": kind}
    config.update({f"model.{k}": v for k, v in model.items()})
    return build_run(config, spec)


def perturb_after(x: torch.Tensor, t: int, vocab: int) -> torch.Tensor:
    """``x`` with every position after ``t`` changed (noise, or other tokens)."""
    changed = x.clone()
    if x.is_floating_point():
        changed[:, t + 1 :] += torch.randn_like(changed[:, t + 1 :])
    else:
        changed[:, t + 1 :] = (
            changed[:, t + 1 :] + 1 + torch.randint_like(changed[:, t + 1 :], vocab - 1)
        ) % vocab
    return changed


def _causal_cases() -> list[tuple[str, str, Any]]:
    """(trainable, kind, pe_type or None) for every model with an is_causal switch."""
    cases = []
    for trainable, kind in _pairs():
        cls = MODELS.get(kind)
        if not cls.has_causal_switch:
            continue
        pe = {k.name: k for k in knobs(cls.Config, "model")}.get("model.pe_type")
        choices = pe.choices if pe is not None and pe.choices else (None,)
        cases += [(trainable, kind, c) for c in choices]
    return cases


@pytest.mark.parametrize(("trainable", "kind"), _pairs())
def test_every_model_trains_a_step_on_its_task(trainable: str, kind: str) -> None:
    run = tiny(trainable, kind)
    x, y = next(iter(run.task.batches("train", 4, generator=run.gen)))
    loss = run.task.loss(run.model(x), y)
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in run.model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize(("trainable", "kind", "pe_type"), _causal_cases())
def test_causal_switch_keeps_future_out(trainable: str, kind: str, pe_type: str | None) -> None:
    extra = {} if pe_type is None else {"pe_type": pe_type}
    for is_causal in (True, False):
        run = tiny(trainable, kind, is_causal=is_causal, **extra)
        x, _ = next(iter(run.task.batches("val", 2)))
        t = x.shape[1] // 2
        x_changed = perturb_after(x, t, run.task.info.vocab_size)
        model = run.model.eval()
        with torch.no_grad():
            same = torch.allclose(model(x)[:, : t + 1], model(x_changed)[:, : t + 1], atol=1e-5)
        assert same is is_causal, f"is_causal={is_causal}"


def test_rope_scores_depend_on_relative_position_only() -> None:
    torch.manual_seed(0)
    q, k = torch.randn(8), torch.randn(8)

    def score(m: int, n: int) -> torch.Tensor:
        rq = rope_rotate(q.view(1, 8), torch.tensor([m]))
        rk = rope_rotate(k.view(1, 8), torch.tensor([n]))
        return (rq * rk).sum()

    assert torch.allclose(score(3, 1), score(3 + 17, 1 + 17), atol=1e-5)
    assert torch.allclose(score(0, 5), score(40, 45), atol=1e-5)
    assert not torch.allclose(score(3, 1), score(3, 2), atol=1e-3)


def test_rope_keeps_norms_and_identity_at_position_zero() -> None:
    x = torch.randn(2, 6, 8)
    rotated = rope_rotate(x, torch.arange(6))
    assert torch.allclose(rotated.norm(dim=-1), x.norm(dim=-1), atol=1e-5)
    assert torch.allclose(rotated[:, 0], x[:, 0])


def test_sinusoidal_table_shape_and_first_row() -> None:
    table = sinusoidal_table(10, 7)
    assert table.shape == (10, 7)
    assert torch.allclose(table[0, 0::2], torch.zeros(4))
    assert torch.allclose(table[0, 1::2], torch.ones(3))


def test_randpe_is_seeded_from_torch_global_rng() -> None:
    torch.manual_seed(1)
    a = make("att", pe_type="randpe").pe
    torch.manual_seed(1)
    b = make("att", pe_type="randpe").pe
    assert a is not None and b is not None and torch.equal(a, b)


def test_checking_every_model_on_meta_leaves_torch_dynamo_unimported() -> None:
    """Checking a space builds its models on the meta device in the driver. The meta kernels
    of the random inits (normal_, uniform_), arange and randn are Python references whose
    first call imports torch._dynamo (seconds of the driver's CPU on the cores the first
    trials start on). A fresh process, as ``abl search``'s driver is, preflights every
    registered model of every trainable."""
    script = (
        "import sys\n"
        "from abl.trainables.models import MODELS\n"
        "from abl.trainables.spec import TRAINABLES\n"
        "from abl.trainables.tasks import TASKS\n"
        "from abl.trainables.loop import preflight\n"
        f"for trainable, kind in {BUILT_IN!r}:\n"
        "    spec = TRAINABLES.get(trainable)\n"
        "    config = {**TASKS.get(spec.task).smoke, **MODELS.get(kind).smoke}\n"
        "    preflight([{**config, 'model.kind': kind}], spec)\n"
        "print('torch._dynamo' in sys.modules, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]  # the models were built, without _dynamo
    for pe_type in ("sinpe", "randpe"):
        with torch.device("meta"):
            pe = make("att", pe_type=pe_type).pe
        real = make("att", pe_type=pe_type).pe
        assert pe is not None and real is not None and pe.shape == real.shape and pe.is_meta
    assert torch.allclose(make("att", pe_type="sinpe").pe, sinusoidal_table(*real.shape))


def test_skip_init_leaves_values_and_everything_else_as_they_are() -> None:
    """Under SkipInit an init fills nothing (the values stay what they were) and returns its
    tensor; other ops run as usual."""
    w = torch.zeros(4, 3)
    with SkipInit():
        assert torch.nn.init.kaiming_uniform_(w) is w and w.normal_() is w
        torch.nn.init.trunc_normal_(w, std=0.02)
        torch.nn.init.xavier_uniform_(tensor=w)
        total = (w + 1).sum()
        layer = torch.nn.Linear(3, 4)
    assert torch.equal(w, torch.zeros(4, 3)) and total.item() == 12.0
    assert layer.weight.shape == (4, 3)
    assert torch.nn.init.normal_(w).abs().sum() > 0  # outside it, inits fill again


@pytest.mark.parametrize(("trainable", "kind"), BUILT_IN)
def test_a_model_built_on_meta_under_skip_init_has_the_real_build_s_shapes(
    trainable: str, kind: str
) -> None:
    """Preflight drops a build that fails for a reason not the user's, so its import check
    alone would pass if SkipInit broke every build: each one must build, with the shapes of
    the real model."""
    run = tiny(trainable, kind)
    cls = type(run.model)
    with torch.device("meta"), SkipInit():
        meta = cls(run.model.cfg, run.task.info)
    shapes = {k: v.shape for k, v in meta.state_dict().items()}
    assert shapes == {k: v.shape for k, v in run.model.state_dict().items()}
    assert shapes and all(p.is_meta for p in meta.parameters())


def test_attention_rejects_sizes_it_cannot_serve() -> None:
    with pytest.raises(AblError, match=r"model\.block_size"):
        make("att", block_size=8)
    with pytest.raises(AblError, match=r"even.*model\.d_model"):
        AttentionForecaster(
            build(AttentionForecaster.Config, {"d_model": 7, "pe_type": "rope"}, section="model"),
            INFO,
        )
