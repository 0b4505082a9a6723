"""A tiny character-level language model, as logbook 003 ran it: a Hydra app that logs to
TensorBoard. Its own code, run unchanged by abl (see space.yaml beside it) or by hand:

    python train.py model.pe_type=rope training.block_size=32
    python train.py --multirun model.pe_type=randn,sinpe,rope training.block_size=8,16,32
"""

from __future__ import annotations

import math
from pathlib import Path

import hydra
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn
from torch.utils.tensorboard import SummaryWriter

TEXT = (Path(__file__).parent / "input.txt").read_text()


def sinusoidal(block_size: int, n_embd: int) -> torch.Tensor:
    pos = torch.arange(block_size).unsqueeze(1)
    freq = torch.exp(torch.arange(0, n_embd, 2) * (-math.log(10000.0) / n_embd))
    table = torch.zeros(block_size, n_embd)
    table[:, 0::2], table[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return table


def rotate(x: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding of (B, T, C) queries or keys."""
    t, c = x.shape[1], x.shape[2]
    freq = 1.0 / (10000 ** (torch.arange(0, c, 2, dtype=torch.float32) / c))
    angle = torch.arange(t, dtype=torch.float32).unsqueeze(1) * freq
    cos, sin = angle.cos(), angle.sin()
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)


class BigramLanguageModelV2(nn.Module):
    """Token embedding, a position encoding, one causal attention layer, a head."""

    def __init__(self, vocab_size: int, n_embd: int, block_size: int, pe_type: str) -> None:
        super().__init__()
        if pe_type not in ("randn", "sinpe", "rope"):
            raise ValueError(f"model.pe_type must be randn, sinpe or rope; got {pe_type!r}")
        self.token_embedding_table = nn.Embedding(vocab_size, n_embd)
        self.fc_qkv = nn.Linear(n_embd, 3 * n_embd)
        self.lm_head = nn.Linear(n_embd, vocab_size)
        self.pe_type, self.n_embd = pe_type, n_embd
        if pe_type == "randn":
            self.pe = nn.Parameter(torch.randn(block_size, n_embd) * 0.02)
        else:
            self.register_buffer("pe", sinusoidal(block_size, n_embd))

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = self.token_embedding_table(idx)
        if self.pe_type != "rope":
            x = x + self.pe[: idx.shape[1]]
        q, k, v = self.fc_qkv(x).split(self.n_embd, dim=-1)
        if self.pe_type == "rope":
            q, k = rotate(q), rotate(k)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        logits = self.lm_head(out)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    torch.manual_seed(cfg.training.seed)
    chars = sorted(set(TEXT))
    data = torch.tensor([chars.index(c) for c in TEXT])
    split = int(0.9 * len(data))
    train, val = data[:split], data[split:]
    t, bs = cfg.training.block_size, cfg.training.batch_size

    def batch(source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ix = torch.randint(len(source) - t - 1, (bs,))
        x = torch.stack([source[i : i + t] for i in ix])
        return x, torch.stack([source[i + 1 : i + t + 1] for i in ix])

    model = BigramLanguageModelV2(len(chars), cfg.model.n_embd, t, cfg.model.pe_type)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.training.learning_rate)
    writer = SummaryWriter(cfg.logger.dir)
    for it in range(1, cfg.training.max_iters + 1):
        loss = model(*batch(train))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % cfg.training.eval_interval == 0 or it == cfg.training.max_iters:
            with torch.no_grad():
                val_loss = sum(model(*batch(val)).item() for _ in range(cfg.training.eval_iters))
            writer.add_scalar("train_loss", loss.item(), it)
            writer.add_scalar("val_loss", val_loss / cfg.training.eval_iters, it)
            writer.flush()
    writer.close()


if __name__ == "__main__":
    main()
