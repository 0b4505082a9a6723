"""Hold validation inputs out of training: which rows of a token batch are validation inputs.

Rows are compared by a 62-bit key (two polynomial hashes modulo 31-bit primes), vectorized:
equal rows always have equal keys, so no validation input is ever missed; two distinct rows
rarely share a key, and then a training sample is merely redrawn once more than needed.

Example::

    held = HeldOut(val_inputs, vocab_size)   # (N, T) token ids
    x[held.hits(x)]                          # the training rows that must be drawn again
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

_PRIMES = (2_147_483_647, 2_147_483_629)  # moduli of the two 31-bit halves of a key


def row_keys(rows: Tensor, vocab: int) -> Tensor:
    """A 62-bit key per row of ``(N, T)`` token ids in ``[0, vocab)``: equal rows, equal keys."""
    low, high = (
        (rows * powers).sum(1) % p  # each term < vocab * 2**31: no int64 overflow
        for p, powers in zip(_PRIMES, _powers(vocab, rows.shape[1]), strict=True)
    )
    return low * 2**31 + high


@functools.lru_cache(maxsize=16)
def _powers(vocab: int, width: int) -> tuple[Tensor, ...]:
    """``vocab**j mod p`` for the columns ``j < width``, one tensor per prime."""
    return tuple(
        torch.tensor([pow(vocab, j, p) for j in range(width)], dtype=torch.long) for p in _PRIMES
    )


class HeldOut:
    """The inputs of a validation set, to test training rows against."""

    def __init__(self, inputs: Tensor, vocab: int) -> None:
        self.vocab = vocab
        self.keys = torch.unique(row_keys(inputs, vocab))  # sorted

    def hits(self, rows: Tensor) -> Tensor:
        """``(N,)`` bool: True where a row of ``rows`` (possibly) is a validation input."""
        return torch.isin(row_keys(rows, self.vocab), self.keys)
