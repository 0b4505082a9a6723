"""Forecasters of a real-valued sequence: single-head attention and an LSTM baseline.

Both map ``(B, T, input_dim)`` to ``(B, T, output_dim)``: at every position a prediction of
the next value. The positional-encoding helpers :func:`sinusoidal_table` and
:func:`rope_rotate` are shared with the other attention models.

Example::

    from abl.trainables.config import build
    from abl.trainables.tasks.base import TaskInfo
    cfg = build(AttentionForecaster.Config, {"pe_type": "rope"}, section="model")
    model = AttentionForecaster(cfg, TaskInfo(input_dim=1, output_dim=1, block_size=32))
    y = model(torch.randn(8, 32, 1))  # (8, 32, 1)
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from abl.errors import AblError
from abl.trainables.models.base import Model
from abl.trainables.models.configs import (
    AttentionForecasterConfig,
    LSTMForecasterConfig,
    MultiHeadForecasterConfig,
)
from abl.trainables.tasks.base import TaskInfo


def sinusoidal_table(n: int, d: int) -> Tensor:
    """The ``(n, d)`` sinusoidal position table of "Attention is all you need".

    Column ``2i`` is ``sin(pos / 10000**(2i/d))`` and column ``2i+1`` the matching cosine;
    an odd ``d`` drops the last cosine column.
    """
    pos = torch.arange(n, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    table = torch.zeros(n, d + d % 2)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)
    return table[:, :d]


def rope_rotate(x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
    """Rotary position embedding: rotate feature pairs of ``x`` (..., T, d) by ``position * freq``.

    Pairs are ``(x[..., i], x[..., i + d/2])`` (the GPT-NeoX layout), so ``d`` must be even.
    Rotations compose, hence ``rope(q, m) · rope(k, n)`` depends on ``m - n`` only.
    """
    d = x.shape[-1]
    half = d // 2
    freq = base ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angle = positions.to(device=x.device, dtype=torch.float32).unsqueeze(-1) * freq  # (T, d/2)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


def _check_sizes(info: TaskInfo) -> None:
    if info.input_dim < 1 or info.output_dim < 1:
        raise AblError(
            f"forecasters need input_dim and output_dim >= 1; the task gives "
            f"{info.input_dim} and {info.output_dim}"
        )


def attend(q: Tensor, k: Tensor, v: Tensor, *, n_head: int, rope: bool, is_causal: bool) -> Tensor:
    """Scaled dot-product attention of ``(B, T, d)`` projections split into ``n_head`` heads.

    With ``rope``, Q and K are rotated per head before the scores; the heads are merged back
    to ``(B, T, d)``. Runs through ``F.scaled_dot_product_attention``.
    """
    b, t, d = q.shape
    q, k, v = (z.view(b, t, n_head, d // n_head).transpose(1, 2) for z in (q, k, v))
    if rope:
        positions = torch.arange(t, device=q.device)
        q, k = rope_rotate(q, positions), rope_rotate(k, positions)
    out = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=is_causal)
    return out.transpose(1, 2).reshape(b, t, d)


def position_table(pe_type: str, n: int, d: int) -> Tensor | None:
    """The additive position table of ``pe_type`` (None for ``none`` and ``rope``)."""
    if pe_type in ("sinpe", "randpe") and torch.get_default_device().type == "meta":
        # A shape-only build (loop.preflight): the meta kernels of arange and randn are
        # Python decompositions that import torch._dynamo, seconds of the driver's CPU.
        return torch.empty(n, d)
    if pe_type == "sinpe":
        return sinusoidal_table(n, d)
    if pe_type == "randpe":
        # Same per-entry variance as the sinusoidal table (1/2), drawn from torch's global RNG.
        return torch.randn(n, d) * math.sqrt(0.5)
    return None


def _check_attention(cfg: Any, info: TaskInfo, head_dim: int) -> None:
    _check_sizes(info)
    if cfg.pe_type == "rope" and head_dim % 2:
        raise AblError(
            f"the head size (d_model / n_head) must be even with pe_type=rope; got {head_dim} "
            f"(model.d_model)"
        )
    if info.block_size > cfg.block_size:
        raise AblError(
            f"block_size must be >= the task's sequence length {info.block_size}; "
            f"got {cfg.block_size} (model.block_size)"
        )


def embed(model: Any, x: Tensor) -> Tensor:
    """Input projection, optional LayerNorm and additive positions, shared by ``att`` and ``att_mh``."""
    t = x.shape[1]
    if t > model.cfg.block_size:
        raise AblError(
            f"sequence length must be <= model.block_size ({model.cfg.block_size}); got {t}"
        )
    h = model.in_ln(model.inp(x))
    return h + model.pe[:t] if model.pe is not None else h


class AttentionForecaster(Model):
    """Single-head self-attention forecaster: input projection, PE, one attention layer, head.

    The ablation axes of logbook 000: LayerNorm on the input / Q / K, causal masking and the
    positional encoding (``randpe`` and ``sinpe`` are added to the projected input, ``rope``
    rotates Q and K).
    """

    Config = AttentionForecasterConfig
    has_causal_switch = True
    smoke: ClassVar[dict[str, Any]] = {"model.d_model": 8}

    def __init__(self, cfg: AttentionForecasterConfig, info: TaskInfo) -> None:
        super().__init__(cfg, info)
        d = cfg.d_model
        _check_attention(cfg, info, d)
        self.inp = nn.Linear(info.input_dim, d)
        self.in_ln = nn.LayerNorm(d) if cfg.is_inln else nn.Identity()
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.q_ln = nn.LayerNorm(d) if cfg.is_qln else nn.Identity()
        self.k_ln = nn.LayerNorm(d) if cfg.is_kln else nn.Identity()
        self.head = nn.Linear(d, info.output_dim)
        self.pe: Tensor | None
        self.register_buffer("pe", position_table(cfg.pe_type, cfg.block_size, d))

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, input_dim)`` -> ``(B, T, output_dim)``: the next value at every position."""
        h = embed(self, x)
        q, k, v = self.q_ln(self.q(h)), self.k_ln(self.k(h)), self.v(h)
        rope = self.cfg.pe_type == "rope"
        att = attend(q, k, v, n_head=1, rope=rope, is_causal=self.cfg.is_causal)
        return self.head(att)


class _Block(nn.Module):
    """Multi-head attention with LayerNorm on Q/K per head, then an MLP; both residual."""

    def __init__(self, cfg: MultiHeadForecasterConfig) -> None:
        super().__init__()
        d, hd = cfg.d_model, cfg.d_model // cfg.n_head
        self.cfg = cfg
        self.qkv = nn.Linear(d, 3 * d)
        self.q_ln = nn.LayerNorm(hd) if cfg.is_qln else nn.Identity()
        self.k_ln = nn.LayerNorm(hd) if cfg.is_kln else nn.Identity()
        self.proj = nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.mlp_ln = nn.LayerNorm(d)

    def forward(self, h: Tensor) -> Tensor:
        b, t, d = h.shape
        hd = d // self.cfg.n_head
        q, k, v = self.qkv(h).split(d, dim=-1)
        # LayerNorm over each head's features, as `att` normalises its single head.
        q = self.q_ln(q.view(b, t, -1, hd)).view(b, t, d)
        k = self.k_ln(k.view(b, t, -1, hd)).view(b, t, d)
        rope = self.cfg.pe_type == "rope"
        h = h + self.proj(
            attend(q, k, v, n_head=self.cfg.n_head, rope=rope, is_causal=self.cfg.is_causal)
        )
        return h + self.mlp(self.mlp_ln(h))


class MultiHeadForecaster(Model):
    """``att`` with ``n_head`` heads and ``n_layer`` residual blocks (logbook 000's ``att_mh``)."""

    Config = MultiHeadForecasterConfig
    has_causal_switch = True
    smoke: ClassVar[dict[str, Any]] = {"model.d_model": 8, "model.n_head": 2}

    def __init__(self, cfg: MultiHeadForecasterConfig, info: TaskInfo) -> None:
        super().__init__(cfg, info)
        if cfg.d_model % cfg.n_head:
            raise AblError(
                f"d_model must divide by n_head; got d_model={cfg.d_model}, n_head={cfg.n_head} "
                f"(model.n_head)"
            )
        _check_attention(cfg, info, cfg.d_model // cfg.n_head)
        self.inp = nn.Linear(info.input_dim, cfg.d_model)
        self.in_ln = nn.LayerNorm(cfg.d_model) if cfg.is_inln else nn.Identity()
        self.pe: Tensor | None
        self.register_buffer("pe", position_table(cfg.pe_type, cfg.block_size, cfg.d_model))
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.n_layer))
        self.head = nn.Linear(cfg.d_model, info.output_dim)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, input_dim)`` -> ``(B, T, output_dim)``: the next value at every position."""
        h = embed(self, x)
        for block in self.blocks:
            h = block(h)
        return self.head(h)


class LSTMForecaster(Model):
    """LSTM baseline: ``nn.LSTM`` over the sequence and a linear head at every position.

    Causal by construction, so it has no ``is_causal`` switch.
    """

    Config = LSTMForecasterConfig
    has_causal_switch = False
    smoke: ClassVar[dict[str, Any]] = {"model.d_model": 8}

    def __init__(self, cfg: LSTMForecasterConfig, info: TaskInfo) -> None:
        super().__init__(cfg, info)
        _check_sizes(info)
        self.lstm = nn.LSTM(info.input_dim, cfg.d_model, cfg.n_layer, batch_first=True)
        self.head = nn.Linear(cfg.d_model, info.output_dim)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, input_dim)`` -> ``(B, T, output_dim)``: the next value at every position."""
        out, _ = self.lstm(x)
        return self.head(out)
