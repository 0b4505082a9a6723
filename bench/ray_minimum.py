"""``python -m bench.ray_minimum STORAGE``: the least a Ray Tune sweep does before a trial runs.

Starts a local Ray, builds a one-trial ``tune.Tuner`` of a function trainable (with
``reuse_actors=True``, as abl sets) and fits it; the function only records when it started.
Prints one JSON line on stdout: ``time.time()`` when ``ray`` was imported, when ``ray.init``
returned, when the trial function started, and when Tune started the trial (the clock of
``time_total_s``), so the ``latency`` figure can subtract its ``Popen`` time. What any Ray Tune tool pays on this machine before its first trial runs.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def trainable(config: dict[str, Any]) -> None:
    """Report when Tune started this function (its first line) and return."""
    start = time.time()
    from ray import tune

    tune.report({"start": start})


def main(storage: str) -> None:
    """One trial of :func:`trainable` on a fresh local Ray; print its timestamps as JSON."""
    import ray

    imported = time.time()
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    ray_init = time.time()
    from ray import tune

    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(reuse_actors=True),
        run_config=tune.RunConfig(storage_path=storage, verbose=0),
    )
    result = tuner.fit()[0]
    if result.error is not None:
        raise result.error
    # When Tune started the trial, as abl's figure reads it: the report's time less Tune's
    # time_total_s (the function reports at once, so its start stands for that time).
    started = result.metrics["start"] - result.metrics["time_total_s"]
    times = {
        "imported": imported,
        "ray_init": ray_init,
        "start": result.metrics["start"],
        "trial": started,
    }
    print(json.dumps(times), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
