"""The bigram family of logbook 003: a lookup table, its factorisation, and one attention layer.

All map ``(B, T)`` token ids to ``(B, T, vocab_size)`` next-token logits and are causal by
construction (no ``is_causal`` switch):

- ``bigram``: each token reads its next-token logits off a ``vocab x vocab`` table;
- ``bigram_mf``: the table factorised as an ``n_embd`` embedding times a linear head;
- ``bigram_att``: the embedding plus a position encoding, one causal single-head attention
  over a fused QKV projection, and the head. ``pe_type`` ``randn`` (a fixed random table) and
  ``sinpe`` (sinusoidal) are added to the embeddings; ``rope`` rotates Q and K instead.

Example::

    from abl.trainables.config import build
    from abl.trainables.tasks.base import TaskInfo
    cfg = build(BigramAttention.Config, {"pe_type": "rope"}, section="model")
    model = BigramAttention(cfg, TaskInfo(vocab_size=65, block_size=32))
    logits = model(torch.randint(65, (8, 32)))  # (8, 32, 65)
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from abl.errors import AblError
from abl.trainables.models.base import Model
from abl.trainables.models.configs import BigramAttentionConfig, BigramConfig, BigramMFConfig
from abl.trainables.models.forecast import attend, position_table
from abl.trainables.tasks.base import TaskInfo

# pe_type of bigram_att -> the additive table of forecast.position_table (None: nothing added).
_TABLES = {"randn": "randpe", "sinpe": "sinpe", "rope": "none"}


def _check_vocab(kind: str, info: TaskInfo) -> None:
    if info.vocab_size < 1:
        raise AblError(
            f"{kind} needs a token task (vocab_size >= 1); the task gives vocab_size={info.vocab_size}"
        )


class Bigram(Model):
    """The original bigram model: a ``vocab x vocab`` embedding table read as logits."""

    Config = BigramConfig
    smoke: ClassVar[dict[str, Any]] = {}

    def __init__(self, cfg: BigramConfig, info: TaskInfo) -> None:
        super().__init__(cfg, info)
        _check_vocab("bigram", info)
        self.table = nn.Embedding(info.vocab_size, info.vocab_size)

    def forward(self, idx: Tensor) -> Tensor:
        """``(B, T)`` token ids -> ``(B, T, vocab_size)`` logits of the next token."""
        return self.table(idx)


class BigramMF(Model):
    """Bigram by matrix factorisation: token embedding, then a linear head (no activation)."""

    Config = BigramMFConfig
    smoke: ClassVar[dict[str, Any]] = {"model.n_embd": 16}

    def __init__(self, cfg: BigramMFConfig, info: TaskInfo) -> None:
        super().__init__(cfg, info)
        _check_vocab("bigram_mf", info)
        self.tok = nn.Embedding(info.vocab_size, cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, info.vocab_size)

    def forward(self, idx: Tensor) -> Tensor:
        """``(B, T)`` token ids -> ``(B, T, vocab_size)`` logits of the next token."""
        return self.head(self.tok(idx))


class BigramAttention(Model):
    """``bigram_mf`` with a position encoding and one causal attention layer (logbook 003's v2).

    The ``randn`` table is drawn once from torch's global RNG (seeded by the trial) with the
    per-entry variance of the sinusoidal table; neither table is trained.
    """

    Config = BigramAttentionConfig
    smoke: ClassVar[dict[str, Any]] = {"model.n_embd": 16}

    def __init__(self, cfg: BigramAttentionConfig, info: TaskInfo) -> None:
        super().__init__(cfg, info)
        _check_vocab("bigram_att", info)
        if info.block_size < 1:
            raise AblError(
                f"bigram_att needs the task's block_size >= 1; got {info.block_size} (data.block_size)"
            )
        if cfg.pe_type == "rope" and cfg.n_embd % 2:
            raise AblError(
                f"n_embd must be even with pe_type=rope; got {cfg.n_embd} (model.n_embd)"
            )
        d = cfg.n_embd
        self.tok = nn.Embedding(info.vocab_size, d)
        self.qkv = nn.Linear(d, 3 * d)
        self.head = nn.Linear(d, info.vocab_size)
        self.pe: Tensor | None
        self.register_buffer("pe", position_table(_TABLES[cfg.pe_type], info.block_size, d))

    def forward(self, idx: Tensor) -> Tensor:
        """``(B, T)`` token ids, ``T <= block_size`` -> ``(B, T, vocab_size)`` next-token logits."""
        t = idx.shape[1]
        if t > self.info.block_size:
            raise AblError(
                f"sequence length must be <= the task's block_size ({self.info.block_size}); got {t}"
            )
        h = self.tok(idx)
        if self.pe is not None:
            h = h + self.pe[:t]
        q, k, v = self.qkv(h).split(self.cfg.n_embd, dim=-1)
        rope = self.cfg.pe_type == "rope"
        return self.head(attend(q, k, v, n_head=1, rope=rope, is_causal=True))
