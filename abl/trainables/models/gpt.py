"""A small GPT-style character LM with the attention switches of logbook 001.

Token embedding, positions (``none``, ``learned``, ``sinpe`` added; ``rope`` rotates Q and K),
``n_layer`` pre-norm blocks (attention + 4x GELU MLP), a final LayerNorm and an LM head tied to
the token embedding. The ablation axes sit inside the attention:

    q, k = norm(activ(q)), norm(activ(k))          # qk_activ, qk_norm (over the last dim)
    w    = attn_activ(scale * q @ k^T)             # softmax | sigmoid | tanh | none
    out  = out_proj(post_attn_norm(w @ v))         # per head, before the output projection

Decisions (the knobs' help texts repeat them):

* ``rms_norm`` is parameter-free, ``x / sqrt(mean(x**2, -1) + eps)``; ``fro_norm`` is
  ``x / ||x||_2`` over ``dim=-1`` (logbook 001's bug was a ``torch.norm`` without ``dim``).
  The only learnable handle on the logit size after a q/k norm is ``logit_scale``.
* ``logit_scale`` = 0 keeps the usual ``1/sqrt(head_dim)``; any other value replaces it, fixed
  by default, or a learnable per-head scalar starting there with ``learn_logit_scale``.
* ``softmax`` runs through ``F.scaled_dot_product_attention`` (memory stays O(T) per row).
  ``sigmoid``/``tanh``/``none`` build the ``(B, H, T, T)`` scores explicitly (memory grows
  with T**2: logbook 001 needed 1.5x the GPU memory), apply the activation, multiply by the
  0/1 lower-triangular mask and divide by the model's ``block_size``. The fixed divisor
  bounds a row's weight sum by 1 (sigmoid, tanh) while keeping the mask's position signal:
  row ``t`` sums ``t + 1`` terms, so identical tokens still differ by position. Dividing by
  the visible count would erase that signal; dividing by the input's length would make a
  position's output depend on how long the input is.

Example::

    from abl.trainables.config import build
    from abl.trainables.tasks.base import TaskInfo
    cfg = build(GPT.Config, {"attn_activ": "sigmoid", "qk_norm": "rms_norm"}, section="model")
    model = GPT(cfg, TaskInfo(vocab_size=65, block_size=64))
    logits = model(torch.randint(65, (8, 64)))  # (8, 64, 65)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from abl.errors import AblError
from abl.trainables.config import param
from abl.trainables.models.base import Model
from abl.trainables.models.forecast import rope_rotate, sinusoidal_table
from abl.trainables.tasks.base import TaskInfo

EPS = 1e-6


@dataclass
class GPTConfig:
    """Knobs of :class:`GPT` (``model.*``)."""

    n_layer: int = param(2, "transformer blocks (pre-norm attention + MLP)")
    n_head: int = param(4, "attention heads; n_embd must divide by it")
    n_embd: int = param(128, "width of the residual stream")
    dropout: float = param(0.0, "dropout on embeddings, attention weights and residual branches")
    pe_type: Literal["none", "learned", "sinpe", "rope"] = param(
        "learned", "positions: none, learned or sinusoidal table (added), or RoPE on Q and K"
    )
    qk_activ: Literal["none", "gelu"] = param("none", "activation on Q and K after projection")
    qk_norm: Literal["none", "rms_norm", "fro_norm"] = param(
        "none", "parameter-free norm of Q and K over the head dim: unit rms or unit L2 norm"
    )
    attn_activ: Literal["softmax", "sigmoid", "tanh", "none"] = param(
        "softmax",
        "activation of the attention logits; non-softmax ones are masked by multiplication "
        "and divided by block_size",
    )
    post_attn_norm: Literal["none", "rms_norm"] = param(
        "none", "parameter-free rms norm of each head's attention output before the projection"
    )
    logit_scale: float = param(
        0.0, "factor on the attention logits; 0 = 1/sqrt(head_dim). Fixed unless learn_logit_scale"
    )
    learn_logit_scale: bool = param(
        False, "make the logit factor a learnable per-head scalar (starting at logit_scale)"
    )
    is_causal: bool = param(True, "mask attention to future positions")


def rms_norm(x: Tensor, eps: float = EPS) -> Tensor:
    """``x / rms(x)`` over the last dim, without a learnable gain: unit rms per vector."""
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)


def fro_norm(x: Tensor, eps: float = EPS) -> Tensor:
    """``x / ||x||_2`` over the last dim (``dim=-1``, not the whole tensor): unit norm per vector."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)


NORMS = {"none": lambda x: x, "rms_norm": rms_norm, "fro_norm": fro_norm}
QK_ACTIVS = {"none": lambda x: x, "gelu": F.gelu}
WEIGHT_ACTIVS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "none": lambda x: x}


def attend_variant(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    attn_activ: str,
    is_causal: bool,
    scale: float | Tensor,
    norm_len: int,
    dropout_p: float = 0.0,
) -> Tensor:
    """Attention of ``(B, H, T, hd)`` heads with the logits multiplied by ``scale``.

    ``softmax`` runs through ``F.scaled_dot_product_attention``; a tensor ``scale`` (one per
    head, shape ``(H, 1, 1)``) is folded into ``q``. Other activations build the ``(B, H, T, T)``
    weights, zero the future (multiplication by the 0/1 causal mask) and divide by ``norm_len``.
    """
    if attn_activ == "softmax":
        if isinstance(scale, Tensor):
            q, scale = q * scale.to(q.dtype), 1.0
        return F.scaled_dot_product_attention(
            q, k, v, is_causal=is_causal, scale=scale, dropout_p=dropout_p
        )
    weights = WEIGHT_ACTIVS[attn_activ]((q @ k.transpose(-2, -1)) * scale)
    if is_causal:
        t = q.shape[-2]
        mask = torch.ones(t, t, dtype=torch.bool, device=q.device).tril()
        weights = weights.masked_fill(~mask, 0.0)  # == weights * mask, but nan-safe
    weights = F.dropout(weights / norm_len, p=dropout_p, training=dropout_p > 0)
    return weights @ v


class SelfAttention(nn.Module):
    """Multi-head self-attention with logbook 001's switches (see the module docstring)."""

    def __init__(self, cfg: GPTConfig, block_size: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.head_dim = cfg.n_embd // cfg.n_head
        self.block_size = block_size
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.scale: Tensor | float = cfg.logit_scale or 1.0 / math.sqrt(self.head_dim)
        if cfg.learn_logit_scale:
            self.scale = nn.Parameter(torch.full((cfg.n_head, 1, 1), float(self.scale)))

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, n_embd)`` -> ``(B, T, n_embd)``."""
        b, t, d = x.shape
        q, k, v = (
            z.view(b, t, self.cfg.n_head, self.head_dim).transpose(1, 2)
            for z in self.qkv(x).split(d, dim=-1)
        )
        activ, norm = QK_ACTIVS[self.cfg.qk_activ], NORMS[self.cfg.qk_norm]
        q, k = norm(activ(q)), norm(activ(k))
        if self.cfg.pe_type == "rope":
            positions = torch.arange(t, device=x.device)
            q, k = rope_rotate(q, positions), rope_rotate(k, positions)
        out = attend_variant(
            q,
            k,
            v,
            attn_activ=self.cfg.attn_activ,
            is_causal=self.cfg.is_causal,
            scale=self.scale,
            norm_len=self.block_size,
            dropout_p=self.cfg.dropout if self.training else 0.0,
        )
        out = NORMS[self.cfg.post_attn_norm](out)
        return self.proj(out.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(self, cfg: GPTConfig, block_size: int) -> None:
        super().__init__()
        d = cfg.n_embd
        self.ln_attn = nn.LayerNorm(d)
        self.attn = SelfAttention(cfg, block_size)
        self.ln_mlp = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop(self.attn(self.ln_attn(x)))
        return x + self.drop(self.mlp(self.ln_mlp(x)))


def _check(cfg: GPTConfig, info: TaskInfo) -> None:
    if info.vocab_size < 1 or info.block_size < 1:
        raise AblError(
            f"gpt needs a token task (vocab_size and block_size >= 1); the task gives "
            f"vocab_size={info.vocab_size}, block_size={info.block_size}"
        )
    if cfg.n_layer < 1:
        raise AblError(f"n_layer must be a positive integer; got {cfg.n_layer} (model.n_layer)")
    if cfg.n_head < 1 or cfg.n_embd < 1 or cfg.n_embd % cfg.n_head:
        raise AblError(
            f"n_embd must be a positive multiple of n_head; got n_embd={cfg.n_embd}, "
            f"n_head={cfg.n_head} (model.n_embd)"
        )
    if cfg.pe_type == "rope" and (cfg.n_embd // cfg.n_head) % 2:
        raise AblError(
            f"the head size (n_embd / n_head) must be even with pe_type=rope; got "
            f"{cfg.n_embd // cfg.n_head} (model.n_embd)"
        )
    if not 0.0 <= cfg.dropout < 1.0:
        raise AblError(f"dropout must be in [0, 1); got {cfg.dropout} (model.dropout)")


class GPT(Model):
    """GPT-style char LM: ``(B, T)`` token ids -> ``(B, T, vocab_size)`` next-token logits.

    ``T`` may be at most the task's ``block_size``. nanoGPT's init (normal 0.02, residual
    projections scaled by ``1/sqrt(2 * n_layer)``) and weight tying of head and embedding.
    """

    Config = GPTConfig
    has_causal_switch = True
    smoke: ClassVar[dict[str, Any]] = {"model.n_layer": 1, "model.n_head": 2, "model.n_embd": 16}

    def __init__(self, cfg: GPTConfig, info: TaskInfo) -> None:
        super().__init__(cfg, info)
        _check(cfg, info)
        d = cfg.n_embd
        self.tok = nn.Embedding(info.vocab_size, d)
        self.pos = nn.Embedding(info.block_size, d) if cfg.pe_type == "learned" else None
        self.pe: Tensor | None
        table = sinusoidal_table(info.block_size, d) if cfg.pe_type == "sinpe" else None
        self.register_buffer("pe", table, persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, info.block_size) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, info.vocab_size, bias=False)
        self.head.weight = self.tok.weight
        self.apply(self._init)
        for block in self.blocks:
            for proj in (block.attn.proj, block.mlp[2]):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: Tensor) -> Tensor:
        """``(B, T)`` LongTensor -> ``(B, T, vocab_size)`` logits of the next token."""
        t = idx.shape[1]
        if t > self.info.block_size:
            raise AblError(f"sequence length must be <= block_size {self.info.block_size}; got {t}")
        h = self.tok(idx)
        if self.pos is not None:
            h = h + self.pos(torch.arange(t, device=idx.device))
        if self.pe is not None:
            h = h + self.pe[:t]
        h = self.drop(h)
        for block in self.blocks:
            h = block(h)
        return self.head(self.ln_f(h))
