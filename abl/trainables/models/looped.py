"""The looped transformer of logbook 004 (Yang et al. 2023, "Looped Transformers are Better at
Learning Algorithms"), with the logbook's two knobs ``n_last_tokens`` and ``use_lstm_layer``.

One body (``n_layer`` causal pre-norm GPT-2 blocks with learned positions and a final LayerNorm,
or an ``n_layer`` LSTM) is applied ``n_loop`` times to a state that starts at zero::

    e     = read_in(x)                            # the embedded prompt, (B, T, n_embd)
    s_0   = 0
    s_k   = body(keep * s_{k-1} + e)              # input injection: e is added every loop
    y_hat = read_out(s_n_loop)                    # a scalar (output_dim) at every position

``keep`` is the ``n_last_tokens`` mask. The logbook: "модель возьмет указанное количество
токенов с конца, замаскировав предыдущие токены" (take that many tokens from the end, masking
the ones before); its code multiplies the previous loop's output by a 0/1 mask over positions
(``mask[:, :-n] = 0``) before adding the input. So "kept" means: the state of the last ``n``
positions carries over to the next loop; every earlier position restarts from the injected input
alone, exactly as in the first loop. ``-1`` (any negative) keeps all, ``0`` keeps none (every loop
then sees only ``e``), ``n >= T`` keeps all. The mask counts from the end of the current prompt.

``n_loop`` follows a step curriculum in training (:meth:`set_step`); evaluation always runs
``n_loop_end`` loops. Only the last ``n_loop_window`` loops are differentiated; earlier ones run
under ``torch.no_grad``. The logbook's loss averages over the predictions of every loop in that
window: ``loss_every_loop`` does that by stacking them along the batch axis in training (the
linreg task's loss tiles its target to match); by default the output is the last loop's.

Example::

    from abl.trainables.config import build
    from abl.trainables.tasks.base import TaskInfo
    cfg = build(LoopedTransformer.Config, {"n_embd": 64, "n_head": 4}, section="model")
    model = LoopedTransformer(cfg, TaskInfo(input_dim=11, output_dim=1, block_size=82))
    y_hat = model(torch.randn(8, 82, 11))  # (8, 82, 1)
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from abl.errors import AblError
from abl.trainables.curriculum import Schedule
from abl.trainables.models.base import Model
from abl.trainables.models.configs import LoopedTransformerConfig
from abl.trainables.tasks.base import TaskInfo


class _Block(nn.Module):
    """Pre-norm GPT-2 block: causal multi-head self-attention, then a 4x GELU MLP."""

    def __init__(self, d: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.ln_1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(
            nn.Linear(d, 4 * d), nn.GELU(approximate="tanh"), nn.Linear(4 * d, d)
        )

    def forward(self, x: Tensor) -> Tensor:
        x = x + self._attend(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))

    def _attend(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        q, k, v = (
            z.view(b, t, self.n_head, d // self.n_head).transpose(1, 2)
            for z in self.qkv(x).split(d, dim=2)
        )
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class _Blocks(nn.Module):
    """Learned positions, ``n_layer`` blocks and a final LayerNorm: one loop of the transformer."""

    def __init__(self, d: int, n_head: int, n_layer: int, block_size: int) -> None:
        super().__init__()
        self.wpe = nn.Embedding(block_size, d)
        self.blocks = nn.ModuleList(_Block(d, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d)
        for module in self.modules():  # GPT-2 initialisation
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for block in self.blocks:
            for proj in (block.proj, block.mlp[2]):
                nn.init.normal_(proj.weight, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

    def forward(self, h: Tensor) -> Tensor:
        t = h.shape[1]
        if t > self.wpe.num_embeddings:
            raise AblError(
                f"prompt length must be <= the task's block_size ({self.wpe.num_embeddings}); got {t}"
            )
        h = h + self.wpe.weight[:t]
        for block in self.blocks:
            h = block(h)
        return self.ln_f(h)


class _LSTMBody(nn.Module):
    """An ``n_layer`` LSTM from a zero hidden state: the looped body of ``use_lstm_layer``."""

    def __init__(self, d: int, n_layer: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(d, d, n_layer, batch_first=True)

    def forward(self, h: Tensor) -> Tensor:
        return self.lstm(h)[0]


class LoopedTransformer(Model):
    """A weight-tied body looped over a state with input injection (see the module docstring).

    ``loop_step`` is one iteration; ``n_loop`` the loop count the next forward runs.
    """

    Config = LoopedTransformerConfig
    has_causal_switch = False  # always causal
    smoke: ClassVar[dict[str, Any]] = {
        "model.n_embd": 16,
        "model.n_head": 2,
        "model.n_loop_start": 2,
        "model.n_loop_end": 4,
        "model.n_loop_inc": 1,
        "model.n_loop_interval": 2,
        "model.n_loop_window": 2,
    }

    def __init__(self, cfg: LoopedTransformerConfig, info: TaskInfo) -> None:
        super().__init__(cfg, info)
        self.loops = _check_config(cfg, info)
        self.step = 0
        d = cfg.n_embd
        self.read_in = nn.Linear(info.input_dim, d)
        self.body: nn.Module = (
            _LSTMBody(d, cfg.n_layer)
            if cfg.use_lstm_layer
            else _Blocks(d, cfg.n_head, cfg.n_layer, info.block_size)
        )
        self.read_out = nn.Linear(d, info.output_dim)

    def set_step(self, step: int) -> None:
        self.step = step

    @property
    def n_loop(self) -> int:
        """Loops of the next forward: the curriculum's in training, ``n_loop_end`` in eval."""
        return self.loops.value(self.step) if self.training else self.cfg.n_loop_end

    def keep_mask(self, t: int, device: torch.device | None = None) -> Tensor:
        """``(t, 1)``: 1 where the previous loop's state is kept (the last ``n_last_tokens``)."""
        n = self.cfg.n_last_tokens
        keep = torch.ones(t, 1, device=device)
        if 0 <= n < t:
            keep[: t - n] = 0.0
        return keep

    def loop_step(self, state: Tensor, inject: Tensor, keep: Tensor) -> Tensor:
        """One loop: the body applied to the kept previous state plus the injected prompt."""
        return self.body(state * keep + inject)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, input_dim)`` -> ``(B, T, output_dim)``, or ``(w*B, ...)`` with loss_every_loop."""
        inject = self.read_in(x)
        keep = self.keep_mask(x.shape[1], x.device).to(inject.dtype)
        state = torch.zeros_like(inject)
        n_loop = self.n_loop
        first_grad = n_loop - min(self.cfg.n_loop_window, n_loop)
        stack = self.cfg.loss_every_loop and self.training
        preds = []
        grad = torch.is_grad_enabled()
        for i in range(n_loop):
            with torch.set_grad_enabled(grad and i >= first_grad):
                state = self.loop_step(state, inject, keep)
            if stack and i >= first_grad:
                preds.append(self.read_out(state))
        return torch.cat(preds) if stack else self.read_out(state)


def _check_config(cfg: LoopedTransformerConfig, info: TaskInfo) -> Schedule:
    """Raise an AblError for a knob the model cannot serve; return the loop schedule."""
    if not cfg.use_lstm_layer:
        if cfg.n_embd % cfg.n_head:
            raise AblError(
                f"n_head must divide n_embd={cfg.n_embd}; got {cfg.n_head} (model.n_head)"
            )
        if info.block_size < 1:
            raise AblError(
                f"the task must give a block_size >= 1 (learned positions); got "
                f"{info.block_size} (task info)"
            )
    try:
        return Schedule(cfg.n_loop_start, cfg.n_loop_end, cfg.n_loop_inc, cfg.n_loop_interval)
    except AblError as exc:
        raise AblError(f"{exc} (model.n_loop_*)") from None
