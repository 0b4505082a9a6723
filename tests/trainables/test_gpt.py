"""The GPT char LM: every attention variant trains, keeps the future out and normalises right."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from abl.errors import AblError
from abl.trainables.config import build
from abl.trainables.models.gpt import (
    GPT,
    SelfAttention,
    attend_variant,
    fro_norm,
    hlb_position_bias,
    rms_norm,
)
from abl.trainables.tasks.base import TaskInfo

VOCAB, BLOCK = 11, 12
INFO = TaskInfo(vocab_size=VOCAB, block_size=BLOCK)
TINY = {"n_layer": 1, "n_head": 2, "n_embd": 8}
ATTN_ACTIVS = ("softmax", "sigmoid", "tanh", "none")
PE_TYPES = ("none", "learned", "sinpe", "rope", "hlb_bias")
WEIGHT_NORMS = ("none", "block_size", "visible")
ACTIVS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "none": lambda x: x}
GRID = list(
    itertools.product(
        ("gelu", "none"), ("fro_norm", "rms_norm", "none"), ATTN_ACTIVS, ("rms_norm", "none")
    )
)


def make(*, loud: bool = False, **values: Any) -> GPT:
    """A tiny GPT; ``loud`` redraws the weights with std 0.5 so that every path shows.

    At nanoGPT's init (std 0.02) the logits of tanh/none attention are so small that a
    changed token moves the output by less than float tolerance.
    """
    torch.manual_seed(0)
    model = GPT(build(GPT.Config, {**TINY, **values}, section="model"), INFO)
    if loud:
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() > 1:
                    p.normal_(std=0.5)
    return model


def tokens(batch: int = 3, t: int = BLOCK, seed: int = 1) -> torch.Tensor:
    return torch.randint(VOCAB, (batch, t), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("qk_activ", "qk_norm", "attn_activ", "post_attn_norm"), GRID)
def test_every_variant_runs_forward_and_backward(
    qk_activ: str, qk_norm: str, attn_activ: str, post_attn_norm: str
) -> None:
    model = make(
        qk_activ=qk_activ, qk_norm=qk_norm, attn_activ=attn_activ, post_attn_norm=post_attn_norm
    )
    x = tokens()
    logits = model(x)
    assert logits.shape == (3, BLOCK, VOCAB)
    loss = F.cross_entropy(logits.reshape(-1, VOCAB), tokens(seed=2).reshape(-1))
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.blocks[0].attn.qkv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("weight_norm", WEIGHT_NORMS)
@pytest.mark.parametrize("pe_type", PE_TYPES)
@pytest.mark.parametrize("attn_activ", ATTN_ACTIVS)
def test_causal_switch_keeps_future_out(attn_activ: str, pe_type: str, weight_norm: str) -> None:
    x = tokens()
    for is_causal in (True, False):
        model = make(
            attn_activ=attn_activ,
            pe_type=pe_type,
            attn_weight_norm=weight_norm,
            is_causal=is_causal,
            loud=True,
        )
        model.eval()
        for t in (0, BLOCK // 2, BLOCK - 2):
            x_changed = x.clone()
            x_changed[:, t + 1 :] = (x[:, t + 1 :] + 1) % VOCAB
            with torch.no_grad():
                before, after = model(x)[:, : t + 1], model(x_changed)[:, : t + 1]
            same = torch.allclose(before, after, atol=1e-6)
            assert same is is_causal, f"is_causal={is_causal}, t={t}"


def test_fro_norm_gives_unit_l2_norm_per_vector() -> None:
    x = torch.randn(2, 3, 5, 8) * 7
    y = fro_norm(x)
    assert torch.allclose(y.norm(dim=-1), torch.ones(2, 3, 5), atol=1e-5)
    # Per vector, not over the whole tensor (logbook 001's bug): directions are kept.
    assert torch.allclose(y * x.norm(dim=-1, keepdim=True), x, atol=1e-4)


def test_rms_norm_gives_unit_rms_per_vector() -> None:
    x = torch.randn(2, 3, 5, 8) * 7 + 1
    y = rms_norm(x)
    assert torch.allclose(y.pow(2).mean(dim=-1).sqrt(), torch.ones(2, 3, 5), atol=1e-5)
    assert torch.allclose(y * x.pow(2).mean(dim=-1, keepdim=True).sqrt(), x, atol=1e-4)


@pytest.mark.parametrize("qk_norm", ["rms_norm", "fro_norm"])
def test_attention_normalises_q_and_k_per_head(qk_norm: str) -> None:
    attn = make(qk_norm=qk_norm, loud=True).blocks[0].attn
    seen: dict[str, torch.Tensor] = {}
    orig = attend_variant

    def spy(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **kw: Any) -> torch.Tensor:
        seen["q"], seen["k"] = q, k
        return orig(q, k, v, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("abl.trainables.models.gpt.attend_variant", spy)
        attn(torch.randn(2, 5, 8) * 3)
    hd = attn.head_dim
    target = math.sqrt(hd) if qk_norm == "rms_norm" else 1.0  # L2 norm of a unit-rms vector
    for z in (seen["q"], seen["k"]):
        assert z.shape == (2, 2, 5, hd)
        assert torch.allclose(z.norm(dim=-1), torch.full((2, 2, 5), target), atol=1e-4)


def hand_softmax(q, k, v, scale, is_causal: bool) -> torch.Tensor:
    scores = (q @ k.transpose(-2, -1)) * scale
    if is_causal:
        t = q.shape[-2]
        scores = scores.masked_fill(~torch.ones(t, t, dtype=torch.bool).tril(), float("-inf"))
    return scores.softmax(dim=-1) @ v


@pytest.mark.parametrize("is_causal", [True, False])
@pytest.mark.parametrize("logit_scale", [0.0, 3.0])
def test_softmax_path_matches_hand_written_attention(logit_scale: float, is_causal: bool) -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 4) for _ in range(3))
    scale = logit_scale or 1 / math.sqrt(4)
    got = attend_variant(q, k, v, attn_activ="softmax", is_causal=is_causal, scale=scale)
    assert torch.allclose(got, hand_softmax(q, k, v, scale, is_causal), atol=1e-5)
    per_head = torch.tensor([0.5, 2.0, 4.0]).view(3, 1, 1)
    got = attend_variant(q, k, v, attn_activ="softmax", is_causal=is_causal, scale=per_head)
    assert torch.allclose(got, hand_softmax(q, k, v, per_head, is_causal), atol=1e-5)


@pytest.mark.parametrize("learn", [False, True])
def test_attention_module_uses_its_logit_scale(learn: bool) -> None:
    attn: SelfAttention = make(logit_scale=5.0, learn_logit_scale=learn).blocks[0].attn
    if learn:
        with torch.no_grad():
            attn.scale.copy_(torch.tensor([5.0, 0.25]).view(2, 1, 1))
    x = torch.randn(2, 6, 8)
    q, k, v = (z.view(2, 6, 2, 4).transpose(1, 2) for z in attn.qkv(x).split(8, dim=-1))
    want = attn.proj(hand_softmax(q, k, v, attn.scale, True).transpose(1, 2).reshape(2, 6, 8))
    assert torch.allclose(attn(x), want, atol=1e-5)
    names = [n for n, _ in attn.named_parameters()]
    assert ("scale" in names) is learn


def identical_token_rows(**values: Any) -> torch.Tensor:
    """Logits of a no-position model on ``BLOCK`` copies of one token."""
    model = make(pe_type="none", loud=True, **values).eval()
    with torch.no_grad():
        return model(torch.full((1, BLOCK), 3))[0]


@pytest.mark.parametrize("weight_norm", ["none", "block_size"])
@pytest.mark.parametrize("attn_activ", ["sigmoid", "tanh", "none"])
def test_non_softmax_outputs_depend_on_position(attn_activ: str, weight_norm: str) -> None:
    logits = identical_token_rows(attn_activ=attn_activ, attn_weight_norm=weight_norm)
    # Identical tokens, no position encoding: only the causal mask's count tells rows apart.
    assert not torch.allclose(logits[0], logits[-1], atol=1e-2)


@pytest.mark.parametrize("attn_activ", ["sigmoid", "tanh", "none"])
def test_visible_weight_norm_erases_the_count_signal(attn_activ: str) -> None:
    logits = identical_token_rows(attn_activ=attn_activ, attn_weight_norm="visible")
    assert torch.allclose(logits[0], logits[-1], atol=1e-5)


def test_softmax_without_positions_cannot_tell_identical_tokens_apart() -> None:
    logits = identical_token_rows(attn_activ="softmax")
    assert torch.allclose(logits[0], logits[-1], atol=1e-5)


def test_hlb_bias_reweights_softmax_but_not_identical_values() -> None:
    hlb = make(attn_activ="softmax", pe_type="hlb_bias", loud=True).eval()
    plain = make(attn_activ="softmax", pe_type="none", loud=True).eval()
    x = tokens(batch=1)
    with torch.no_grad():
        same = hlb(torch.full((1, BLOCK), 3))[0]
        assert torch.allclose(same[0], same[-1], atol=1e-5)  # equal values, any weights
        assert not torch.allclose(hlb(x), plain(x), atol=1e-3)
        for block in hlb.blocks:
            block.attn.pos_slope.fill_(-40.0)  # softplus(-40) ~ 4e-18: no bias left
        assert torch.allclose(hlb(x), plain(x), atol=1e-6)


def ones_attention(attn_activ: str, weight_norm: str, is_causal: bool, t: int = 4) -> torch.Tensor:
    """Row sums of attention with q = k = 0 (every logit 0) and v = 1."""
    q = k = torch.zeros(1, 1, t, 2)
    v = torch.ones(1, 1, t, 2)
    out = attend_variant(
        q,
        k,
        v,
        attn_activ=attn_activ,
        is_causal=is_causal,
        scale=1.0,
        weight_norm=weight_norm,
        block_size=8,
    )
    return out[0, 0, :, 0]


@pytest.mark.parametrize("is_causal", [True, False])
@pytest.mark.parametrize("weight_norm", WEIGHT_NORMS)
def test_weight_norm_divides_as_it_says(weight_norm: str, is_causal: bool) -> None:
    # sigmoid(0) = 0.5 on each visible position: t + 1 of them when causal, all 4 when not.
    visible = torch.tensor([1.0, 2.0, 3.0, 4.0]) if is_causal else torch.full((4,), 4.0)
    divisor = {"none": 1.0, "block_size": 8.0, "visible": visible}[weight_norm]
    got = ones_attention("sigmoid", weight_norm, is_causal)
    assert torch.allclose(got, 0.5 * visible / divisor)


@pytest.mark.parametrize("weight_norm", WEIGHT_NORMS)
def test_softmax_ignores_weight_norm(weight_norm: str) -> None:
    assert torch.allclose(ones_attention("softmax", weight_norm, True), torch.ones(4))


def test_hlb_position_bias_is_minus_softplus_slope_times_distance() -> None:
    slope = torch.tensor(0.3)
    c = math.log1p(math.exp(0.3))  # softplus
    dist = torch.tensor([[0.0, -1, -2], [1, 0, -1], [2, 1, 0]])
    assert torch.allclose(hlb_position_bias(3, slope, is_causal=True), -c * dist)
    assert torch.allclose(hlb_position_bias(3, slope, is_causal=False), -c * dist.abs())


@pytest.mark.parametrize("attn_activ", ATTN_ACTIVS)
def test_hlb_bias_weights_in_closed_form(attn_activ: str) -> None:
    # q = k = 0: the logits are the bias alone; v = identity reads the weights off the output.
    t = 5
    q = k = torch.zeros(1, 1, t, t)
    v = torch.eye(t).view(1, 1, t, t)
    bias = hlb_position_bias(t, torch.tensor(0.5), is_causal=True)
    got = attend_variant(q, k, v, attn_activ=attn_activ, is_causal=True, scale=1.0, bias=bias)
    c = math.log1p(math.exp(0.5))
    i, j = torch.arange(t).view(t, 1), torch.arange(t).view(1, t)
    logits = -c * (i - j).float()
    seen = j <= i
    if attn_activ == "softmax":
        want = torch.where(seen, logits.exp(), 0.0)
        want = want / want.sum(dim=-1, keepdim=True)
    else:
        want = torch.where(seen, ACTIVS[attn_activ](logits), 0.0)
    assert torch.allclose(got[0, 0], want, atol=1e-6)


@pytest.mark.parametrize("attn_activ", ATTN_ACTIVS)
def test_attention_module_adds_hlb_bias_to_its_logits(attn_activ: str) -> None:
    """snimu/att-norm's hlb-gpt code, written out: add the bias (``-inf`` above the diagonal)
    to the scaled logits, then activate; tanh/none multiply by the 0/1 mask instead."""
    attn: SelfAttention = make(attn_activ=attn_activ, pe_type="hlb_bias").blocks[0].attn
    with torch.no_grad():
        attn.pos_slope.fill_(0.7)
    x = torch.randn(2, 6, 8) * 3
    q, k, v = (z.view(2, 6, 2, 4).transpose(1, 2) for z in attn.qkv(x).split(8, dim=-1))
    i, j = torch.arange(6).view(6, 1), torch.arange(6).view(1, 6)
    bias = -F.softplus(torch.tensor(0.7)) * (i - j)
    logits = q @ k.transpose(-2, -1) / math.sqrt(4)
    if attn_activ in ("softmax", "sigmoid"):
        logits = logits + torch.where(j <= i, bias, float("-inf"))
        fn = (lambda z: z.softmax(-1)) if attn_activ == "softmax" else torch.sigmoid
        weights = fn(logits)
    else:
        weights = ACTIVS[attn_activ](logits + bias) * (j <= i)
    want = attn.proj((weights @ v).transpose(1, 2).reshape(2, 6, 8))
    assert torch.allclose(attn(x), want, atol=1e-5)


@pytest.mark.parametrize("attn_activ", ATTN_ACTIVS)
def test_hlb_bias_slope_is_learnable(attn_activ: str) -> None:
    model = make(attn_activ=attn_activ, pe_type="hlb_bias", loud=True)
    slopes = [b.attn.pos_slope for b in model.blocks]
    names = [n for n, _ in model.named_parameters()]
    assert "blocks.0.attn.pos_slope" in names
    assert all(s.item() == 1.0 for s in slopes)  # hlb-gpt's init; softplus(1) ~ 1.31
    loss = F.cross_entropy(model(tokens()).reshape(-1, VOCAB), tokens(seed=2).reshape(-1))
    loss.backward()
    assert all(s.grad is not None and s.grad.abs() > 0 for s in slopes)
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert all(s.item() != 1.0 for s in slopes)


@pytest.mark.parametrize("pe_type", ["none", "learned", "sinpe", "rope"])
def test_only_hlb_bias_has_a_slope(pe_type: str) -> None:
    model = make(pe_type=pe_type)
    assert not any("pos_slope" in n for n, _ in model.named_parameters())


def test_gpt_rejects_what_it_cannot_serve() -> None:
    with pytest.raises(AblError, match=r"model\.n_embd"):
        make(n_embd=9, n_head=2)
    with pytest.raises(
        AblError, match=r"must be even with pe_type=rope; got 3 .*model\.pe_type"
    ) as err:
        make(n_embd=6, n_head=2, pe_type="rope")
    assert "\n" not in str(err.value)
    with pytest.raises(AblError, match="block_size"):
        make()(tokens(t=BLOCK + 1))
    with pytest.raises(AblError, match="token task"):
        GPT(build(GPT.Config, TINY, section="model"), TaskInfo(input_dim=1))


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"pe_type": "hlb"}, r"pe_type must be one of .*hlb_bias; got 'hlb'"),
        (
            {"attn_weight_norm": "blocksize"},
            r"attn_weight_norm must be one of none, block_size, visible; got 'blocksize'",
        ),
    ],
)
def test_bad_values_name_the_rule_and_the_value(values: dict[str, Any], expected: str) -> None:
    with pytest.raises(AblError, match=expected) as err:
        make(**values)
    assert "\n" not in str(err.value)
