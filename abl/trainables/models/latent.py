"""The latent "thinker" of logbook 002: a small memory that re-reads the input for a few steps.

``n_latent`` learned memory slots are processed for ``n_step`` steps by the same block(s): each
step the slots attend to each other (optional), read the embedded input by cross-attention
(slots are the queries, input tokens the keys and values) and pass through an MLP, all with
residuals. The answer is decoded from the memory alone: ``n_dec_layer`` layers of learned
output-position queries cross-attending to the memory (with optional self-attention among the
queries), then a linear head to ``(B, T_out, V)`` logits. Every layer is pre-norm
``nn.MultiheadAttention`` (batch first: the logbook's bug of 18 Dec was a permuted batch axis).

Example::

    from abl.trainables.config import build
    from abl.trainables.tasks.base import TaskInfo
    info = TaskInfo(vocab_size=19, block_size=20, output_len=21)
    model = LatentThinker(build(LatentThinker.Config, {"n_step": 3}, section="model"), info)
    logits = model(torch.randint(0, 19, (8, 20)))  # (8, 21, 19)
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from abl.errors import AblError
from abl.trainables.models.base import Model
from abl.trainables.models.configs import LatentThinkerConfig
from abl.trainables.tasks.base import TaskInfo


class ReadBlock(nn.Module):
    """Pre-norm transformer-decoder layer: optional self-attention, cross-attention, MLP.

    ``forward(h, context)`` updates the queries ``h`` (B, N, d) by reading ``context`` (B, M, d).
    """

    def __init__(self, d: int, n_head: int, d_ff: int, *, self_attn: bool, dropout: float) -> None:
        super().__init__()
        self.self_norm = nn.LayerNorm(d) if self_attn else None
        self.self_attn = (
            nn.MultiheadAttention(d, n_head, dropout=dropout, batch_first=True)
            if self_attn
            else None
        )
        self.query_norm = nn.LayerNorm(d)
        self.context_norm = nn.LayerNorm(d)
        self.cross_attn = nn.MultiheadAttention(d, n_head, dropout=dropout, batch_first=True)
        self.ff_norm = nn.LayerNorm(d)
        self.ff = nn.Sequential(
            nn.Linear(d, d_ff), nn.GELU(), nn.Linear(d_ff, d), nn.Dropout(dropout)
        )

    def forward(self, h: Tensor, context: Tensor) -> Tensor:
        if self.self_attn is not None and self.self_norm is not None:
            a = self.self_norm(h)
            h = h + self.self_attn(a, a, a, need_weights=False)[0]
        kv = self.context_norm(context)
        h = h + self.cross_attn(self.query_norm(h), kv, kv, need_weights=False)[0]
        return h + self.ff(self.ff_norm(h))


class LatentThinker(Model):
    """Memory slots that think for ``n_step`` steps, then an output decoder reading the memory.

    ``forward(x)`` maps ``(B, T_in)`` token ids to ``(B, T_out, vocab_size)`` logits;
    ``forward(x, n_step=k)`` runs ``k`` steps with the same weights (more or less "thinking").
    """

    Config = LatentThinkerConfig
    has_causal_switch = False
    smoke: ClassVar[dict[str, Any]] = {
        "model.d_model": 16,
        "model.n_head": 2,
        "model.n_latent": 2,
        "model.n_step": 1,
        "model.n_dec_layer": 1,
    }

    def __init__(self, cfg: LatentThinkerConfig, info: TaskInfo) -> None:
        super().__init__(cfg, info)
        _check(cfg, info)
        d = cfg.d_model
        d_ff = cfg.d_ff or 4 * d
        t_out = info.output_len or info.block_size
        self.tok = nn.Embedding(info.vocab_size, d)
        self.pos_in = nn.Embedding(info.block_size, d)
        self.latent = nn.Embedding(cfg.n_latent, d)
        self.pos_out = nn.Embedding(t_out, d)
        self.proc = nn.ModuleList(
            ReadBlock(d, cfg.n_head, d_ff, self_attn=cfg.mem_self_attn, dropout=cfg.dropout)
            for _ in range(cfg.n_proc_layer)
        )
        self.dec = nn.ModuleList(
            ReadBlock(d, cfg.n_head, d_ff, self_attn=cfg.dec_self_attn, dropout=cfg.dropout)
            for _ in range(cfg.n_dec_layer)
        )
        self.out_norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, info.vocab_size)

    def think(self, x: Tensor, n_step: int) -> Tensor:
        """The memory ``(B, n_latent, d_model)`` after ``n_step`` steps over input ``x``."""
        t = x.shape[1]
        if t > self.info.block_size:
            raise AblError(
                f"input length must be <= the task's block_size {self.info.block_size}; got {t}"
            )
        inp = self.tok(x) + self.pos_in.weight[:t]
        mem = self.latent.weight.expand(x.shape[0], -1, -1)
        if self.training and self.cfg.latent_noise > 0:
            mem = mem + self.cfg.latent_noise * torch.randn_like(mem)
        for _ in range(n_step):
            for block in self.proc:
                mem = block(mem, inp)
        return mem

    def forward(self, x: Tensor, n_step: int | None = None) -> Tensor:
        """``(B, T_in)`` token ids -> ``(B, T_out, vocab_size)`` logits."""
        mem = self.think(x, self.cfg.n_step if n_step is None else n_step)
        out = self.pos_out.weight.expand(x.shape[0], -1, -1)
        for block in self.dec:
            out = block(out, mem)
        return self.head(self.out_norm(out))


def _check(cfg: LatentThinkerConfig, info: TaskInfo) -> None:
    if info.vocab_size < 1 or info.block_size < 1:
        raise AblError(
            "the latent model needs a token task (vocab_size and block_size >= 1); "
            f"the task gives vocab_size={info.vocab_size}, block_size={info.block_size}"
        )
    if cfg.d_model % cfg.n_head:
        raise AblError(f"n_head must divide d_model {cfg.d_model}; got {cfg.n_head} (model.n_head)")
