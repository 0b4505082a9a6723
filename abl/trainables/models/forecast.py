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
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from abl.errors import AblError
from abl.trainables.config import param
from abl.trainables.models.base import Model
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


@dataclass
class AttentionForecasterConfig:
    """Knobs of :class:`AttentionForecaster` (``model.*``)."""

    d_model: int = param(64, "width of the projected input and of Q, K, V")
    block_size: int = param(512, "longest sequence accepted (rows of the PE tables)")
    is_inln: bool = param(False, "LayerNorm on the projected input")
    is_qln: bool = param(False, "LayerNorm on Q after its projection")
    is_kln: bool = param(False, "LayerNorm on K after its projection")
    is_causal: bool = param(True, "mask attention to future positions")
    pe_type: Literal["none", "randpe", "sinpe", "rope"] = param(
        "sinpe", "positional encoding: none, random table, sinusoidal (both added) or RoPE on Q, K"
    )


def _check_sizes(d_model: int, info: TaskInfo) -> None:
    if d_model < 1:
        raise AblError(f"d_model must be a positive integer; got {d_model} (model.d_model)")
    if info.input_dim < 1 or info.output_dim < 1:
        raise AblError(
            f"forecasters need input_dim and output_dim >= 1; the task gives "
            f"{info.input_dim} and {info.output_dim}"
        )


class AttentionForecaster(Model):
    """Single-head self-attention forecaster: input projection, PE, one attention layer, head.

    The ablation axes of logbook 000: LayerNorm on the input / Q / K, causal masking and the
    positional encoding (``randpe`` and ``sinpe`` are added to the projected input, ``rope``
    rotates Q and K).
    """

    Config = AttentionForecasterConfig
    has_causal_switch = True

    def __init__(self, cfg: AttentionForecasterConfig, info: TaskInfo) -> None:
        super().__init__(cfg, info)
        d = cfg.d_model
        _check_sizes(d, info)
        if cfg.pe_type == "rope" and d % 2:
            raise AblError(f"d_model must be even with pe_type=rope; got {d} (model.d_model)")
        if info.block_size > cfg.block_size:
            raise AblError(
                f"block_size must be >= the task's sequence length {info.block_size}; "
                f"got {cfg.block_size} (model.block_size)"
            )
        self.inp = nn.Linear(info.input_dim, d)
        self.in_ln = nn.LayerNorm(d) if cfg.is_inln else nn.Identity()
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.q_ln = nn.LayerNorm(d) if cfg.is_qln else nn.Identity()
        self.k_ln = nn.LayerNorm(d) if cfg.is_kln else nn.Identity()
        self.head = nn.Linear(d, info.output_dim)
        self.pe: Tensor | None
        pe = None
        if cfg.pe_type == "sinpe":
            pe = sinusoidal_table(cfg.block_size, d)
        elif cfg.pe_type == "randpe":
            # Same per-entry variance as the sinusoidal table (1/2), drawn from torch's global RNG.
            pe = torch.randn(cfg.block_size, d) * math.sqrt(0.5)
        self.register_buffer("pe", pe)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, input_dim)`` -> ``(B, T, output_dim)``: the next value at every position."""
        t = x.shape[1]
        if t > self.cfg.block_size:
            raise AblError(
                f"sequence length must be <= model.block_size ({self.cfg.block_size}); got {t}"
            )
        h = self.in_ln(self.inp(x))
        if self.pe is not None:
            h = h + self.pe[:t]
        q, k, v = self.q_ln(self.q(h)), self.k_ln(self.k(h)), self.v(h)
        if self.cfg.pe_type == "rope":
            positions = torch.arange(t, device=x.device)
            q, k = rope_rotate(q, positions), rope_rotate(k, positions)
        att = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=self.cfg.is_causal)
        return self.head(att)


@dataclass
class LSTMForecasterConfig:
    """Knobs of :class:`LSTMForecaster` (``model.*``)."""

    d_model: int = param(64, "hidden size of the LSTM")
    n_layer: int = param(1, "stacked LSTM layers")


class LSTMForecaster(Model):
    """LSTM baseline: ``nn.LSTM`` over the sequence and a linear head at every position.

    Causal by construction, so it has no ``is_causal`` switch.
    """

    Config = LSTMForecasterConfig
    has_causal_switch = False

    def __init__(self, cfg: LSTMForecasterConfig, info: TaskInfo) -> None:
        super().__init__(cfg, info)
        _check_sizes(cfg.d_model, info)
        if cfg.n_layer < 1:
            raise AblError(f"n_layer must be a positive integer; got {cfg.n_layer} (model.n_layer)")
        self.lstm = nn.LSTM(info.input_dim, cfg.d_model, cfg.n_layer, batch_first=True)
        self.head = nn.Linear(cfg.d_model, info.output_dim)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, input_dim)`` -> ``(B, T, output_dim)``: the next value at every position."""
        out, _ = self.lstm(x)
        return self.head(out)
