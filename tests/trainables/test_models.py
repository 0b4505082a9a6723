"""Every registered model: builds from its defaults, trains a step, and keeps the future out."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from abl.errors import AblError
from abl.trainables.config import build, params_of
from abl.trainables.models import MODELS
from abl.trainables.models.forecast import AttentionForecaster, rope_rotate, sinusoidal_table
from abl.trainables.tasks.base import TaskInfo

INFO = TaskInfo(input_dim=3, output_dim=2, block_size=16)


def make(name: str, **values: Any) -> torch.nn.Module:
    cls = MODELS.get(name)
    return cls(build(cls.Config, values, section="model"), INFO)


def _causal_cases() -> list[tuple[str, Any]]:
    """(model name, pe_type or None) for every model with an is_causal switch."""
    cases = []
    for name in MODELS.names():
        cls = MODELS.get(name)
        if not cls.has_causal_switch:
            continue
        pe = {p.name: p for p in params_of(cls.Config)}.get("pe_type")
        choices = pe.choices if pe is not None and pe.choices else (None,)
        cases += [(name, c) for c in choices]
    return cases


@pytest.mark.parametrize("name", MODELS.names())
def test_model_forward_backward(name: str) -> None:
    torch.manual_seed(0)
    model = make(name)
    x = torch.randn(2, 5, INFO.input_dim)
    out = model(x)
    assert out.shape == (2, 5, INFO.output_dim)
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize(("name", "pe_type"), _causal_cases())
def test_causal_switch_keeps_future_out(name: str, pe_type: str | None) -> None:
    torch.manual_seed(0)
    extra = {} if pe_type is None else {"pe_type": pe_type}
    x = torch.randn(2, 10, INFO.input_dim)
    t = 4
    x_changed = x.clone()
    x_changed[:, t + 1 :] += torch.randn_like(x_changed[:, t + 1 :])
    for is_causal in (True, False):
        model = make(name, is_causal=is_causal, **extra).eval()
        with torch.no_grad():
            same = torch.allclose(model(x)[:, : t + 1], model(x_changed)[:, : t + 1], atol=1e-6)
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


def test_attention_rejects_sizes_it_cannot_serve() -> None:
    with pytest.raises(AblError, match=r"model\.block_size"):
        make("att", block_size=8)
    with pytest.raises(AblError, match=r"even.*model\.d_model"):
        AttentionForecaster(
            build(AttentionForecaster.Config, {"d_model": 7, "pe_type": "rope"}, section="model"),
            INFO,
        )
