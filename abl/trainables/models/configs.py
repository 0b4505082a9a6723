"""The ``model.*`` knobs of every built-in model, torch-free.

Each model module imports its config from here (``AttentionForecaster.Config``), and the
trainable specs read them without importing the models, so validating a space needs no torch.
Rules of a single value sit on its field; rules between knobs, or against the task's info,
stay in the model's ``__init__``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from abl.trainables.config import ComponentConfig

_CAUSAL = "mask attention to future positions"


class AttentionForecasterConfig(ComponentConfig):
    """Knobs of :class:`~abl.trainables.models.forecast.AttentionForecaster` (``model.*``)."""

    d_model: int = Field(64, ge=1, description="width of the projected input and of Q, K, V")
    block_size: int = Field(
        512, ge=1, description="longest sequence accepted (rows of the PE tables)"
    )
    is_inln: bool = Field(False, description="LayerNorm on the projected input")
    is_qln: bool = Field(False, description="LayerNorm on Q after its projection")
    is_kln: bool = Field(False, description="LayerNorm on K after its projection")
    is_causal: bool = Field(True, description=_CAUSAL)
    pe_type: Literal["none", "randpe", "sinpe", "rope"] = Field(
        "sinpe",
        description="positional encoding: none, random table, sinusoidal (both added) or RoPE "
        "on Q, K",
    )


class MultiHeadForecasterConfig(AttentionForecasterConfig):
    """Knobs of ``att_mh`` (``model.*``): those of ``att`` plus heads and layers."""

    n_head: int = Field(8, ge=1, description="attention heads; d_model must divide by it")
    n_layer: int = Field(
        1, ge=1, description="attention blocks (attention + MLP, each with a residual)"
    )


class LSTMForecasterConfig(ComponentConfig):
    """Knobs of :class:`~abl.trainables.models.forecast.LSTMForecaster` (``model.*``)."""

    d_model: int = Field(64, ge=1, description="hidden size of the LSTM")
    n_layer: int = Field(1, ge=1, description="stacked LSTM layers")


class BigramConfig(ComponentConfig):
    """``bigram`` has no knobs: its size is the task's vocabulary."""


class BigramMFConfig(ComponentConfig):
    """Knobs of ``bigram_mf`` (``model.*``)."""

    n_embd: int = Field(
        384, ge=1, description="width of the token embedding (rank of the factorised table)"
    )


class BigramAttentionConfig(ComponentConfig):
    """Knobs of ``bigram_att`` (``model.*``); the block size is the task's."""

    n_embd: int = Field(64, ge=1, description="width of the token embedding and of Q, K, V")
    pe_type: Literal["randn", "sinpe", "rope"] = Field(
        "randn",
        description="positional encoding: fixed random table or sinusoidal (both added to the "
        "embeddings), or RoPE on Q, K",
    )


class GPTConfig(ComponentConfig):
    """Knobs of :class:`~abl.trainables.models.gpt.GPT` (``model.*``)."""

    n_layer: int = Field(2, ge=1, description="transformer blocks (pre-norm attention + MLP)")
    n_head: int = Field(4, ge=1, description="attention heads; n_embd must divide by it")
    n_embd: int = Field(128, ge=1, description="width of the residual stream")
    dropout: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="dropout on embeddings, attention weights and residual branches",
    )
    pe_type: Literal["none", "learned", "sinpe", "rope", "hlb_bias"] = Field(
        "learned",
        description="positions: none; learned (llm.c/nanoGPT) or sinusoidal table added to the "
        "embeddings; RoPE on Q and K; hlb_bias: hlb-gpt's learned linear distance bias added "
        "to the logits",
    )
    qk_activ: Literal["none", "gelu"] = Field(
        "none", description="activation on Q and K after projection"
    )
    qk_norm: Literal["none", "rms_norm", "fro_norm"] = Field(
        "none",
        description="parameter-free norm of Q and K over the head dim: unit rms or unit L2 norm",
    )
    attn_activ: Literal["softmax", "sigmoid", "tanh", "none"] = Field(
        "softmax",
        description="activation of the attention logits; non-softmax ones are masked by "
        "multiplying with the 0/1 causal mask, then divided as attn_weight_norm says",
    )
    attn_weight_norm: Literal["none", "block_size", "visible"] = Field(
        "none",
        description="divisor of the sigmoid/tanh/none weights (softmax ignores it): none "
        "(logbook 001's code), block_size (fixed), visible (the row's visible count: erases "
        "the count signal)",
    )
    post_attn_norm: Literal["none", "rms_norm"] = Field(
        "none",
        description="parameter-free rms norm of each head's attention output before the projection",
    )
    logit_scale: float = Field(
        0.0,
        description="factor on the attention logits; 0 = 1/sqrt(head_dim). Fixed unless "
        "learn_logit_scale",
    )
    learn_logit_scale: bool = Field(
        False,
        description="make the logit factor a learnable per-head scalar (starting at logit_scale)",
    )
    is_causal: bool = Field(True, description=_CAUSAL)


class LatentThinkerConfig(ComponentConfig):
    """Knobs of :class:`~abl.trainables.models.latent.LatentThinker` (``model.*``); defaults
    from the logbook's working run."""

    d_model: int = Field(
        32, ge=1, description="width of token embeddings, memory slots and output queries"
    )
    n_head: int = Field(
        4, ge=1, description="attention heads of every attention layer (must divide d_model)"
    )
    d_ff: int = Field(0, ge=0, description="hidden width of the MLPs; 0 = 4 x d_model")
    n_latent: int = Field(4, ge=1, description="learned memory slots")
    n_step: int = Field(
        2, ge=1, description="processing steps: the same block(s) re-read the input each step"
    )
    n_proc_layer: int = Field(
        1, ge=1, description="blocks per processing step (shared across steps)"
    )
    mem_self_attn: bool = Field(
        True, description="self-attention among the memory slots in each step"
    )
    n_dec_layer: int = Field(
        2, ge=1, description="decoder layers: output-position queries reading the memory"
    )
    dec_self_attn: bool = Field(
        True, description="self-attention among the output queries in each layer"
    )
    latent_noise: float = Field(
        0.0, ge=0, description="std of Gaussian noise on the initial memory in training"
    )
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout in attention and MLPs")


class LoopedTransformerConfig(ComponentConfig):
    """Knobs of :class:`~abl.trainables.models.looped.LoopedTransformer` (``model.*``);
    defaults are the logbook's."""

    n_embd: int = Field(256, ge=1, description="width of the state, the blocks and the LSTM")
    n_head: int = Field(8, ge=1, description="attention heads; n_embd must divide by it")
    n_layer: int = Field(
        1, ge=1, description="blocks (or LSTM layers) applied in order within every loop"
    )
    n_loop_start: int = Field(15, ge=1, description="loops at the first optimizer step")
    n_loop_end: int = Field(
        30,
        ge=1,
        description="loops at the end of the curriculum; evaluation always runs these",
    )
    n_loop_inc: int = Field(
        2, description="change of the loop count at every n_loop_interval steps"
    )
    n_loop_interval: int = Field(
        500, description="optimizer steps between changes of the loop count"
    )
    n_loop_window: int = Field(
        15,
        ge=1,
        description="gradient flows through the last w loops only; earlier loops run under no_grad",
    )
    n_last_tokens: int = Field(
        -1,
        description="the previous loop's state is kept at the last n positions only; earlier "
        "positions restart from the injected input. -1 = all, 0 = none",
    )
    use_lstm_layer: bool = Field(
        False, description="an n_layer LSTM as the looped body instead of blocks"
    )
    loss_every_loop: bool = Field(
        False,
        description="training output stacks every window loop's prediction along the batch "
        "axis ((w*B, T, out), loop-major) so the loss averages them, as in the logbook; "
        "False = the last loop only",
    )
