"""``python -m bench.plain_loop SPACE [OVERRIDE]...``: a space's configs trained in one loop.

What Hydra's basic launcher does with ``--multirun``: every config of the space, one after
another, in this one process, with torch's default threads, no Ray and no sinks (each calls
:func:`abl.trainables.loop.train`, as ``throughput``'s loop does). Prints one JSON line on
stdout with ``time.time()`` when the first ``train()`` call began, for the ``latency`` figure.
"""

from __future__ import annotations

import json
import sys
import time


def main(name: str, overrides: list[str]) -> None:
    """Train every config of space ``name`` (with ``overrides``) in turn; print the first's start."""
    from abl.space import expand, load_space
    from abl.space.load import trainable_of
    from abl.trainables.loop import train
    from bench._env import ignore_report

    space = load_space(name, overrides)
    spec = trainable_of(space)
    first: float | None = None
    for config in expand(space, spec):
        first = time.time() if first is None else first
        train(config, trainable=spec, report=ignore_report, device="cpu")
    print(json.dumps({"first_train": first}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
