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
from abl.trainables.models.gpt import GPT, SelfAttention, attend_variant, fro_norm, rms_norm
from abl.trainables.tasks.base import TaskInfo

VOCAB, BLOCK = 11, 12
INFO = TaskInfo(vocab_size=VOCAB, block_size=BLOCK)
TINY = {"n_layer": 1, "n_head": 2, "n_embd": 8}
ATTN_ACTIVS = ("softmax", "sigmoid", "tanh", "none")
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


@pytest.mark.parametrize("pe_type", ["none", "learned", "sinpe", "rope"])
@pytest.mark.parametrize("attn_activ", ATTN_ACTIVS)
def test_causal_switch_keeps_future_out(attn_activ: str, pe_type: str) -> None:
    x = tokens()
    t = BLOCK // 2
    x_changed = x.clone()
    x_changed[:, t + 1 :] = (x[:, t + 1 :] + 1) % VOCAB
    for is_causal in (True, False):
        model = make(attn_activ=attn_activ, pe_type=pe_type, is_causal=is_causal, loud=True)
        model.eval()
        with torch.no_grad():
            before, after = model(x)[:, : t + 1], model(x_changed)[:, : t + 1]
        assert torch.allclose(before, after, atol=1e-6) is is_causal, f"is_causal={is_causal}"


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
    got = attend_variant(
        q, k, v, attn_activ="softmax", is_causal=is_causal, scale=scale, norm_len=7
    )
    assert torch.allclose(got, hand_softmax(q, k, v, scale, is_causal), atol=1e-5)
    per_head = torch.tensor([0.5, 2.0, 4.0]).view(3, 1, 1)
    got = attend_variant(
        q, k, v, attn_activ="softmax", is_causal=is_causal, scale=per_head, norm_len=7
    )
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


@pytest.mark.parametrize("attn_activ", ["sigmoid", "tanh", "none"])
def test_non_softmax_outputs_depend_on_position(attn_activ: str) -> None:
    model = make(attn_activ=attn_activ, pe_type="none", loud=True).eval()
    x = torch.full((1, BLOCK), 3)
    with torch.no_grad():
        logits = model(x)[0]
    # Identical tokens, no position encoding: only the causal mask's count tells rows apart.
    assert not torch.allclose(logits[0], logits[-1], atol=1e-2)


def test_softmax_without_positions_cannot_tell_identical_tokens_apart() -> None:
    model = make(attn_activ="softmax", pe_type="none", loud=True).eval()
    with torch.no_grad():
        logits = model(torch.full((1, BLOCK), 3))[0]
    assert torch.allclose(logits[0], logits[-1], atol=1e-5)


def test_explicit_path_divides_by_block_size() -> None:
    q, k = torch.zeros(1, 1, 4, 2), torch.zeros(1, 1, 4, 2)
    v = torch.ones(1, 1, 4, 2)
    out = attend_variant(q, k, v, attn_activ="sigmoid", is_causal=True, scale=1.0, norm_len=8)
    # sigmoid(0) = 0.5 on the t + 1 visible positions, divided by 8.
    assert torch.allclose(out[0, 0, :, 0], torch.tensor([1.0, 2.0, 3.0, 4.0]) * 0.5 / 8)


def test_gpt_rejects_what_it_cannot_serve() -> None:
    with pytest.raises(AblError, match=r"model\.n_embd"):
        make(n_embd=9, n_head=2)
    with pytest.raises(AblError, match=r"even.*model\.n_embd"):
        make(n_embd=6, n_head=2, pe_type="rope")
    with pytest.raises(AblError, match="block_size"):
        make()(tokens(t=BLOCK + 1))
    with pytest.raises(AblError, match="token task"):
        GPT(build(GPT.Config, TINY, section="model"), TaskInfo(input_dim=1))
