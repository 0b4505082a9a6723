"""Expanding a space into trial configs, and checking every one against its trainable.

Grid and random search are expanded here, not by Tune's ``grid_search``: Tune cannot express
``when:`` branches that add grid axes, nor repeats that share one random draw across seeds, and
expanding up front makes ``--dry-run`` show exactly what will run. The list then goes to Tune's
BasicVariantGenerator as ``points_to_evaluate``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from abl.errors import AblError, did_you_mean, one_of
from abl.space.schema import Dist, Space

if TYPE_CHECKING:
    from abl.trainables.trainable import Trainable

# Trials one sweep may hold: Tune keeps every trial in the driver (about 0.5 KB each in abl's
# sinks, far more in Tune), and bench/report_scale.py measures reports up to 100k trials.
MAX_TRIALS = 100_000


def grid_cells(grid: dict[str, list[Any]]) -> Iterator[dict[str, Any]]:
    """Every combination of the grid axes, first axis slowest."""
    keys = list(grid)
    for combo in itertools.product(*(grid[k] for k in keys)):
        yield dict(zip(keys, combo, strict=True))


def draw(dist: Dist, rng: np.random.Generator) -> Any:
    """One value of a distribution (``int`` bounds are inclusive, as in Optuna)."""
    if dist.kind == "choice":
        return dist.args[int(rng.integers(len(dist.args)))]
    low, high = (float(a) for a in dist.args)  # type: ignore[arg-type]
    if dist.kind == "uniform":
        return float(rng.uniform(low, high))
    if dist.kind == "loguniform":
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))
    return int(rng.integers(int(low), int(high) + 1))


def count_trials(space: Space) -> int:
    """How many trials the space runs (a tuned ablation: arms x (tune.trials + confirm))."""
    if space.tune is not None:
        return len(arm_configs(space)) * (space.tune.trials + space.confirm_seeds)
    if space.search.algorithm == "tpe":
        return space.search.samples * space.seeds
    # Repeats multiply, and configurations are counted up to the cap only: 8 million trials are
    # refused in a second, not enumerated first (past the cap the count is a lower bound).
    configs = itertools.islice(_configurations(space, np.random.default_rng(0)), MAX_TRIALS + 1)
    return sum(1 for _ in configs) * space.seeds


def trial_range(space: Space) -> tuple[int, int]:
    """The fewest and the most trials the space runs: they differ with adaptive repeats
    (``min`` seeds of every configuration, up to ``max`` each)."""
    most = count_trials(space)
    adaptive = space.adaptive
    if adaptive is None:
        return most, most
    if space.tune is not None:
        arms = len(arm_configs(space))
        return arms * (space.tune.trials + adaptive.min), most
    return most // adaptive.max * adaptive.min, most


def _with_whens(
    space: Space,
    given: dict[str, Any],
    defaults: dict[str, Any],
    rng: np.random.Generator,
    start: int = 0,
) -> Iterator[dict[str, Any]]:
    for i in range(start, len(space.when)):
        block = space.when[i]
        if block.matches({**defaults, **given}):
            for cell in grid_cells(block.grid):
                branch = {**given, **block.fixed, **cell}
                branch.update({k: draw(d, rng) for k, d in block.sample.items()})
                yield from _with_whens(space, branch, defaults, rng, i + 1)
            return
    yield given


def _configurations(
    space: Space, rng: np.random.Generator, defaults: dict[str, Any] | None = None
) -> Iterator[dict[str, Any]]:
    """Every configuration of a grid or random space, before repeats."""
    samples = space.search.samples if space.search.algorithm == "random" else 1
    for _ in range(samples):
        for cell in grid_cells(space.grid):
            given = {**space.fixed, **cell}
            given.update({k: draw(d, rng) for k, d in space.sample.items()})
            if space.tune is not None:  # one draw per arm: enough to check every key
                given.update({k: draw(d, rng) for k, d in space.tune.params.items()})
            yield from _with_whens(space, given, defaults or {}, rng)


def _given_configs(
    space: Space, rng: np.random.Generator, defaults: dict[str, Any] | None = None
) -> Iterator[dict[str, Any]]:
    base_seed = int(space.fixed.get("seed", 0) or 0)
    for config in _configurations(space, rng, defaults):
        for r in range(space.seeds):
            yield {**config, "seed": base_seed + r} if space.seeds > 1 else config


def arm_configs(space: Space, defaults: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The arms of a tuned ablation: fixed values plus one grid cell (and its ``when:`` keys).

    ``defaults`` are the trainable's defaults, which ``when: {if: ...}`` may match on.
    """
    rng = np.random.default_rng(0)  # unused: a tuned space has no sample: draws
    return [
        config
        for cell in grid_cells(space.grid)
        for config in _with_whens(space, {**space.fixed, **cell}, defaults or {}, rng)
    ]


def expand(space: Space, trainable: Trainable, *, limit: int | None = None) -> list[dict[str, Any]]:
    """Full flat configs of the trials a grid or random space runs, each resolved (and checked)
    by ``trainable``.

    For a TPE space this is one draw per grid cell: enough to check every reachable key; so is
    it for a tuned ablation (one draw of ``tune.params`` per arm).
    """
    rng = np.random.default_rng(space.search.seed)
    defaults = trainable.resolve({}, space.source)
    out = []
    for i, given in enumerate(_given_configs(space, rng, defaults)):
        if i >= MAX_TRIALS:
            raise AblError(f"a sweep may have at most {MAX_TRIALS} trials ({space.source})")
        if limit is not None and i >= limit:
            break
        out.append(trainable.resolve(given, space.source))
    return out


def _check_report_metrics(space: Space, metrics: tuple[str, ...]) -> None:
    from abl.trainables.metrics import metric_mode

    for i, name in enumerate(space.report):
        where = f"{space.source}, report[{i}]"
        if name not in metrics:
            raise AblError(
                f"report: names metrics that trainable '{space.trainable}' reports "
                f"({one_of(metrics)}); got '{name}'{did_you_mean(name, metrics)} ({where})"
            )
        if name != space.metric and metric_mode(name) is None:
            raise AblError(
                f"report: needs metrics that are better one way (min or max); '{name}' is a "
                f"measurement ({where})"
            )


def check_space(space: Space, trainable: Trainable, *, models: bool = True) -> None:
    """Everything that can be checked before a sweep starts, with one clear error.

    ``models=False`` leaves out building every distinct model on the meta device
    (:func:`check_models`), which a sweep does while Ray starts.
    """
    if space.seeds > 1 and ("seed" in space.grid or "seed" in space.sample):
        raise AblError(
            f"repeats runs seeds 0..{space.seeds - 1} itself; remove seed from grid/sample "
            f"or set repeats: 1 ({space.source}, repeats)"
        )
    if space.search.algorithm == "grid" and (space.sample or any(b.sample for b in space.when)):
        raise AblError(
            f"sample: needs search.algorithm random or tpe; got grid ({space.source}, search.algorithm)"
        )
    n = count_trials(space)
    if n > MAX_TRIALS:
        raise AblError(
            f"a sweep may have at most {MAX_TRIALS} trials; this one has {n} "
            f"(repeats {space.seeds}); narrow the grid or split it ({space.source})"
        )
    metrics = trainable.metrics()  # None: a function or command, whose first report tells
    if metrics is not None and space.metric not in metrics:
        raise AblError(
            f"metric must be one that trainable '{space.trainable}' reports "
            f"({one_of(metrics)}); got '{space.metric}' ({space.source}, metric)"
        )
    if metrics is not None:
        _check_report_metrics(space, metrics)
    if space.pack > 1 and not hasattr(trainable, "task"):
        raise AblError(
            f"pack: fuses trials of abl's own training loop; trainable '{space.trainable}' "
            f"runs its own code, so pack must be 1 with it; got pack: {space.pack} "
            f"({space.source}, pack)"
        )
    if models:
        check_models(space, trainable)


def check_models(space: Space, trainable: Trainable) -> None:
    """Build every distinct task and model of the space (models on the meta device), so a
    config that its model rejects is one error before any trial starts; with ``pack:``, check
    that each pack's members can train as one."""
    configs = expand(space, trainable, limit=10_000)
    try:
        trainable.preflight(configs)
    except AblError as exc:
        raise AblError(f"{exc} ({space.source})".replace(") (", ", ", 1)) from None
    if space.pack > 1:
        from abl.trainables.pack import check_packable

        for members in packs(expand(space, trainable), space.pack):
            try:
                check_packable(members, trainable)  # type: ignore[arg-type]
            except AblError as exc:
                raise AblError(f"pack: {exc}; set pack: 1 ({space.source}, pack)") from None


def packs(configs: Sequence[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    """``configs`` grouped by what may share a pack, each group cut into packs of at most
    ``size`` whose sizes differ by one at most; packs in the order of their first member."""
    from abl.trainables.pack import pack_key

    groups: dict[str, list[dict[str, Any]]] = {}
    for config in configs:
        groups.setdefault(pack_key(config), []).append(config)
    out: list[list[dict[str, Any]]] = []
    for group in groups.values():
        n = math.ceil(len(group) / size)
        base, extra = divmod(len(group), n)
        start = 0
        for i in range(n):
            end = start + base + (i < extra)
            out.append(group[start:end])
            start = end
    first = {id(c): i for i, c in enumerate(configs)}
    return sorted(out, key=lambda p: first[id(p[0])])
