"""A small GPT-style character LM with the attention switches of logbook 001.

Token embedding, positions (``pe_type``), ``n_layer`` pre-norm blocks (attention + 4x GELU
MLP), a final LayerNorm and an LM head tied to the token embedding. The ablation axes sit
inside the attention (per head; ``C`` is the 0/1 causal mask, ``b`` the position bias):

    q, k = norm(activ(q)), norm(activ(k))          # qk_activ, qk_norm (over the last dim)
    s    = scale * q @ k^T + b                     # b = 0 unless pe_type=hlb_bias
    w    = softmax(s + log C)                      # attn_activ=softmax
    w    = activ(s) * C / n                        # sigmoid | tanh | none; n: attn_weight_norm
    out  = out_proj(post_attn_norm(w @ v))         # per head, before the output projection

Where positions enter (``pe_type``; logbook 001 asks whether they decide sigmoid vs softmax):

* ``learned`` (default): a learned absolute table added to the token embeddings, as in
  karpathy/llm.c ``train_gpt2.py`` and nanoGPT ``model.py`` (``wpe``), where the logbook
  found sigmoid worse than softmax. ``sinpe``: the fixed sinusoidal table, added the same way.
* ``rope``: Q and K rotated by position (after the q/k norm); nothing added to the embeddings.
* ``hlb_bias``: tysam-code/hlb-gpt's "learnable linear positional encodings", the only
  position signal of hlb-gpt (and of snimu/att-norm, logbook 001's fork): per layer one
  learnable scalar ``m`` (initialised to 1, shared by the heads), and
  ``b[i, j] = -softplus(m) * (i - j)`` is added to the logits before the activation (hlb-gpt
  builds it into the additive ``attn_mask`` of ``F.scaled_dot_product_attention``). For
  ``sigmoid``/``tanh``/``none`` the bias is added the same way and the causal mask then
  multiplies ("add the attn-mask, then multiply with it"); for sigmoid this equals hlb-gpt's
  ``-inf`` mask exactly. Not carried over: hlb-gpt's 100x learning rate and 0.995/step decay
  for ``m`` (abl's loop has one AdamW group). With ``is_causal=false`` the distance is
  ``|i - j|`` (an abl extension; hlb-gpt is causal only).
* ``none``: no position signal but what the causal mask gives: softmax rows cannot tell
  identical tokens apart, non-softmax rows (with ``attn_weight_norm=none``) sum ``t + 1``
  terms, a count of the position.

Other decisions (the knobs' help texts repeat them):

* ``attn_weight_norm`` divides the non-softmax weights: ``none`` (default) divides by nothing,
  as snimu/att-norm's hlb-gpt fork and its llm.c ``train_gpt2.py`` do; ``block_size`` divides
  by the model's ``block_size`` (abl's former silent behaviour: it bounds a sigmoid row's sum
  by 1 and keeps the count signal; with learned positions it alone made sigmoid match softmax
  at the attn_variants budget, with ``hlb_bias`` it hurts); ``visible`` divides row ``t`` by
  its ``t + 1`` visible positions (``T`` when not causal): an average, which erases the count
  signal. Softmax rows sum to 1 and ignore it.
* ``rms_norm`` is parameter-free, ``x / sqrt(mean(x**2, -1) + eps)``; ``fro_norm`` is
  ``x / ||x||_2`` over ``dim=-1`` (logbook 001's bug was a ``torch.norm`` without ``dim``).
  The only learnable handle on the logit size after a q/k norm is ``logit_scale``.
* ``logit_scale`` = 0 keeps the usual ``1/sqrt(head_dim)``; any other value replaces it, fixed
  by default, or a learnable per-head scalar starting there with ``learn_logit_scale``.
* ``softmax`` runs through ``F.scaled_dot_product_attention`` (memory stays O(T) per row
  without a bias; with ``hlb_bias`` a float ``(T, T)`` mask carries the causal ``-inf``).
  ``sigmoid``/``tanh``/``none`` build the ``(B, H, T, T)`` scores explicitly (memory grows
  with T**2: logbook 001 needed 1.5x the GPU memory).

Example::

    from abl.trainables.config import build
    from abl.trainables.tasks.base import TaskInfo
    cfg = build(GPT.Config, {"attn_activ": "sigmoid", "pe_type": "hlb_bias"}, section="model")
    model = GPT(cfg, TaskInfo(vocab_size=65, block_size=64))
    logits = model(torch.randint(65, (8, 64)))  # (8, 64, 65)
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from abl.errors import AblError
from abl.trainables.models.base import Model
from abl.trainables.models.configs import GPTConfig
from abl.trainables.models.forecast import rope_rotate, sinusoidal_table
from abl.trainables.tasks.base import TaskInfo

EPS = 1e-6


def rms_norm(x: Tensor, eps: float = EPS) -> Tensor:
    """``x / rms(x)`` over the last dim, without a learnable gain: unit rms per vector."""
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)


def fro_norm(x: Tensor, eps: float = EPS) -> Tensor:
    """``x / ||x||_2`` over the last dim (``dim=-1``, not the whole tensor): unit norm per vector."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)


NORMS = {"none": lambda x: x, "rms_norm": rms_norm, "fro_norm": fro_norm}
QK_ACTIVS = {"none": lambda x: x, "gelu": F.gelu}
WEIGHT_ACTIVS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "none": lambda x: x}


def causal_mask(t: int, device: torch.device | None = None) -> Tensor:
    """The ``(t, t)`` boolean lower triangle: row ``i`` sees columns ``j <= i``."""
    return torch.ones(t, t, dtype=torch.bool, device=device).tril()


def hlb_position_bias(t: int, slope: Tensor, *, is_causal: bool) -> Tensor:
    """hlb-gpt's linear position bias: ``b[i, j] = -softplus(slope) * (i - j)``, shape ``(t, t)``.

    Follows tysam-code/hlb-gpt ``main.py`` (``position_bias_base``, ``position_bias_mult``):
    the query's own key gets 0, each step back ``-softplus(slope)``. Above the diagonal the
    values are positive and masked away by the caller; ``is_causal=False`` uses ``|i - j|``.
    """
    pos = torch.arange(t, device=slope.device, dtype=slope.dtype)
    dist = pos.unsqueeze(1) - pos.unsqueeze(0)
    if not is_causal:
        dist = dist.abs()
    return -F.softplus(slope) * dist


def weight_divisor(weight_norm: str, t: int, *, block_size: int, is_causal: bool) -> Tensor | int:
    """What ``attn_weight_norm`` divides the non-softmax weights by, broadcastable to ``(t, t)``."""
    if weight_norm == "none":
        return 1
    if weight_norm == "block_size":
        return block_size
    if not is_causal:  # visible: every row sees all t positions
        return t
    return torch.arange(1, t + 1, dtype=torch.float32).unsqueeze(1)  # row i sees i + 1


def attend_variant(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    attn_activ: str,
    is_causal: bool,
    scale: float | Tensor,
    bias: Tensor | None = None,
    weight_norm: str = "none",
    block_size: int = 1,
    dropout_p: float = 0.0,
) -> Tensor:
    """Attention of ``(B, H, T, hd)`` heads with the logits ``scale * q @ k^T + bias``.

    ``softmax`` runs through ``F.scaled_dot_product_attention``; a tensor ``scale`` (one per
    head, shape ``(H, 1, 1)``) is folded into ``q``, and a ``(T, T)`` ``bias`` becomes a float
    ``attn_mask`` with the causal ``-inf`` built in (it cannot combine with ``is_causal``).
    Other activations build the ``(B, H, T, T)`` weights ``activ(logits)``, zero the future
    (multiplication by the 0/1 causal mask) and divide as ``weight_norm`` says.
    """
    t = q.shape[-2]
    if attn_activ == "softmax":
        if isinstance(scale, Tensor):
            q, scale = q * scale.to(q.dtype), 1.0
        mask = None
        if bias is not None:
            mask = bias.to(q.dtype)
            if is_causal:
                mask = mask.masked_fill(~causal_mask(t, q.device), float("-inf"))
        return F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            is_causal=is_causal and mask is None,
            scale=scale,
            dropout_p=dropout_p,
        )
    logits = (q @ k.transpose(-2, -1)) * scale
    if bias is not None:
        logits = logits + bias
    weights = WEIGHT_ACTIVS[attn_activ](logits)
    if is_causal:
        weights = weights.masked_fill(~causal_mask(t, q.device), 0.0)  # == * C, but nan-safe
    divisor = weight_divisor(weight_norm, t, block_size=block_size, is_causal=is_causal)
    if isinstance(divisor, Tensor):
        divisor = divisor.to(device=weights.device, dtype=weights.dtype)
    weights = F.dropout(weights / divisor, p=dropout_p, training=dropout_p > 0)
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
        # hlb-gpt's position_bias_mult: one raw slope per layer, softplus(1.0) ~ 1.31 at init.
        self.pos_slope = nn.Parameter(torch.tensor(1.0)) if cfg.pe_type == "hlb_bias" else None

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
        bias = None
        if self.pos_slope is not None:
            bias = hlb_position_bias(t, self.pos_slope, is_causal=self.cfg.is_causal)
        out = attend_variant(
            q,
            k,
            v,
            attn_activ=self.cfg.attn_activ,
            is_causal=self.cfg.is_causal,
            scale=self.scale,
            bias=bias,
            weight_norm=self.cfg.attn_weight_norm,
            block_size=self.block_size,
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
    if cfg.n_embd % cfg.n_head:
        raise AblError(
            f"n_embd must be a positive multiple of n_head; got n_embd={cfg.n_embd}, "
            f"n_head={cfg.n_head} (model.n_embd)"
        )
    if cfg.pe_type == "rope" and (cfg.n_embd // cfg.n_head) % 2:
        raise AblError(
            f"the head size (n_embd / n_head) must be even with pe_type=rope; got "
            f"{cfg.n_embd // cfg.n_head} (model.n_embd, model.pe_type)"
        )


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
