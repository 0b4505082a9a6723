"""Character-level language modelling on a UTF-8 text: predict the next character everywhere.

The vocabulary is the sorted set of the text's characters; the text is split by position (the
last ``val_fraction`` is validation). A batch holds ``batch_size`` windows of ``block_size + 1``
characters at random starts: input ``w[:-1]``, target ``w[1:]``. Training windows come from
the loop's generator (seeded by the trial seed); validation windows from a generator seeded by
``data.seed``, so every epoch of every trial of a sweep is scored on the same windows.

Without ``data.path`` the text is the built-in corpus: the Python reference manual's topic
pages that the standard library ships in ``pydoc_data.topics`` (about 465 KB of English prose
and grammar for Python 3.11). It needs no download and is the same for a given Python version.

Example::

    from abl.trainables.config import build
    task = CharLMTask(build(CharLMTask.Config, {"block_size": 32}, section="data"), seed=0)
    x, y = next(task.batches("train", 8))  # (8, 32) LongTensors, y[:, :-1] == x[:, 1:]
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from abl.errors import AblError
from abl.trainables.tasks.base import Split, Task, TaskInfo
from abl.trainables.tasks.configs import CharLMConfig

_VAL_STREAM = 1  # seeds the validation windows apart from the default training stream (0)


@functools.lru_cache(maxsize=1)
def builtin_corpus() -> str:
    """The built-in corpus: every pydoc topic page of this Python, in sorted topic order.

    ``pydoc_data.topics`` is plain data in the standard library (``help('topics')`` reads it),
    so it survives ``python -OO``, needs no network and is deterministic per Python version.
    Cached in-process: trials in one worker build it once.
    """
    try:
        from pydoc_data.topics import topics
    except ImportError as exc:  # some distributions strip pydoc_data
        raise AblError(
            f"the built-in corpus needs the standard library's pydoc_data, which this Python "
            f"lacks ({exc}); set data.path to a UTF-8 text file (data.path)"
        ) from None
    return "\n\n".join(topics[key].strip() for key in sorted(topics)) + "\n"


def read_text(path: str) -> str:
    """The text of UTF-8 file ``path``; a missing, unreadable or non-UTF-8 file is an AblError."""
    file = Path(path)
    if not file.is_file():
        raise AblError(f"path must be an existing UTF-8 text file; got '{path}' (data.path)")
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise AblError(
            f"path must be a UTF-8 text file; '{path}' is not (byte {exc.start}: {exc.reason}) "
            f"(data.path)"
        ) from None
    except OSError as exc:
        raise AblError(
            f"path must be a readable text file; cannot read '{path}' ({exc.strerror}) (data.path)"
        ) from None


def encode(text: str, chars: str) -> Tensor:
    """Token ids of ``text`` (a LongTensor) given the sorted vocabulary ``chars``."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    table = np.frombuffer(chars.encode("utf-32-le"), dtype=np.uint32)
    return torch.from_numpy(np.searchsorted(table, codes).astype(np.int64))


def _generator(*keys: int) -> torch.Generator:
    """A torch generator seeded from independent integer keys (a seed, a stream)."""
    entropy = [k % 2**64 for k in keys]  # SeedSequence takes non-negative integers
    seed = int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])
    return torch.Generator().manual_seed(seed)


class CharLMTask(Task):
    """Next-character prediction with cross entropy over the character vocabulary.

    Attributes: ``chars`` (the vocabulary, sorted), ``text`` (the whole corpus) and
    ``n_train`` (characters in the training split).
    """

    Config = CharLMConfig
    metrics = CharLMConfig.task_metrics
    smoke: ClassVar[dict[str, Any]] = {
        "data.block_size": 16,
        "data.epoch_batches": 4,
        "data.val_batches": 2,
    }
    next_step_targets = CharLMConfig.task_next_step_targets

    def __init__(self, cfg: CharLMConfig, *, seed: int) -> None:
        super().__init__(cfg, seed=seed)
        self.text = read_text(cfg.path) if cfg.path else builtin_corpus()
        self.chars = "".join(sorted(set(self.text)))
        tokens = encode(self.text, self.chars)
        n = len(tokens)
        n_val = round(n * cfg.val_fraction)
        self.n_train = n - n_val
        need = cfg.block_size + 1
        if min(self.n_train, n_val) < need:
            where = cfg.path or "the built-in corpus"
            raise AblError(
                f"each split needs at least block_size + 1 = {need} characters; {n} characters "
                f"with val_fraction={cfg.val_fraction} give {self.n_train} train / {n_val} val "
                f"({where}, data.block_size)"
            )
        self._data: dict[str, Tensor] = {
            "train": tokens[: self.n_train],
            "val": tokens[self.n_train :],
        }
        self.info = TaskInfo(vocab_size=len(self.chars), block_size=cfg.block_size)

    def batches(
        self, split: Split, batch_size: int, *, generator: torch.Generator | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield ``(x, y)`` LongTensors ``(B, block_size)``, ``y`` = ``x`` shifted by one.

        Train: ``epoch_batches`` batches at starts drawn from ``generator`` (else from the
        trial seed). Val: ``val_batches`` batches from a generator seeded by ``data.seed`` on
        every call, whatever ``generator`` is given, so validation windows never change.
        """
        if split == "val":
            gen, count = _generator(self.cfg.seed, _VAL_STREAM), self.cfg.val_batches
        else:
            gen = generator if generator is not None else _generator(self.seed, 0)
            count = self.cfg.epoch_batches
        data, t = self._data[split], self.cfg.block_size
        offsets = torch.arange(t + 1)
        for _ in range(count):
            starts = torch.randint(len(data) - t, (batch_size,), generator=gen)
            window = data[starts.unsqueeze(1) + offsets]  # (B, T + 1)
            yield window[:, :-1], window[:, 1:]

    def num_batches(self, split: Split, batch_size: int) -> int:
        """``epoch_batches`` for train, ``val_batches`` for val (nothing is generated)."""
        return self.cfg.val_batches if split == "val" else self.cfg.epoch_batches

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """Cross entropy of ``(B, T, V)`` logits against ``(B, T)`` next characters, in nats."""
        return F.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1))

    def decode(self, tokens: Tensor) -> str:
        """The characters of a 1-D tensor of token ids."""
        return "".join(self.chars[i] for i in tokens.tolist())
