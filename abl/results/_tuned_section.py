"""The report's tuned-ablation section and its isolation plot (runs whose space has ``tune:``)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from abl.results._design import label
from abl.results._doc import Block, Bullets, Cell, Heading, Images, Para, Table
from abl.results._sections import Analysis, num, plural
from abl.results.plots import _figure, _save, slug
from abl.results.tuned import TunedAnalysis
from abl.space.schema import Space


def section(a: Analysis) -> list[Block]:
    """Isolation table and plot, the verdict, pairwise tests, the untuned reading, edges."""
    t = a.tuned
    space = a.run.space
    if t is None or space.tune is None:
        return []
    tune = space.tune
    intro = (
        f"Each of {plural(len(t.arms), 'arm')} tuned {', '.join(f'`{k}`' for k in tune.params)} "
        f"with {plural(tune.trials, 'trial')} of its own ({tune.algorithm}), then re-ran its "
        f"best setting with {_confirm(space)}. Arms are ranked by the "
        + (
            f"confirmed mean `{a.metric}`; arms not significantly apart (Welch's t-test, "
            f"Holm-corrected, p < 0.05) share a rank (`=`)."
            if t.confirmed
            else f"`{a.metric}` of their best tuning trial (no confirmation seeds: untested)."
        )
    )
    blocks: list[Block] = [Heading("Tuned ablation"), Para(intro), _table(t), Para(t.conclusion())]
    blocks += [Images(a.plots.get("tuned", []))] if a.plots.get("tuned") else []
    blocks += _pairs(t)
    blocks += [Heading("Nuisance optima", 3), Bullets(_edges(t))]
    return blocks


def _table(t: TunedAnalysis) -> Table:
    keys = list(t.arms[0].values) if t.arms else []
    nuisance = list(dict.fromkeys(k for arm in t.arms for k in arm.best))
    head = [
        "rank",
        *keys,
        f"mean {t.metric}",
        "n",
        "95% CI",
        *(f"best {k}" for k in nuisance),
        f"untuned {t.metric}",
    ]
    rows = []
    for arm in t.arms:
        low, high = arm.interval()
        ci = "" if math.isnan(low) else f"[{num(low)}, {num(high)}]"
        rows.append(
            [Cell(f"={arm.rank}" if arm.tied else str(arm.rank), bold=arm.rank == 1)]
            + [Cell(label(arm.values.get(k))) for k in keys]
            + [Cell(num(arm.score), numeric=True), Cell(str(len(arm.confirmed)), numeric=True)]
            + [Cell(ci, numeric=True)]
            + [Cell(label(arm.best.get(k)), numeric=True) for k in nuisance]
            + [Cell(num(arm.untuned_value), numeric=True)]
        )
    return Table(head, rows)


def _pairs(t: TunedAnalysis) -> list[Block]:
    if not t.pairs:
        return []
    rows = [
        [
            Cell(p.a.name),
            Cell(p.b.name),
            Cell(num(p.diff), numeric=True),
            Cell(num(p.hedges_g), numeric=True),
            Cell(f"{p.p:.3g}", numeric=True),
            Cell(f"{p.p_holm:.3g}", numeric=True, bold=p.significant),
        ]
        for p in t.pairs
    ]
    head = ["arm A", "arm B", f"A - B ({t.metric})", "Hedges' g", "p (Welch)", "p (Holm)"]
    return [Heading("Pairwise comparison", 3), Table(head, rows)]


def _edges(t: TunedAnalysis) -> list[str]:
    notes = []
    for arm in t.arms:
        best = ", ".join(f"`{k}` = {label(v)}" for k, v in arm.best.items()) or "none"
        edge = "; ".join(arm.edges)
        notes.append(f"`{arm.name}`: {best}" + (f"; **{edge}**" if edge else ""))
    if t.shared_key is not None:
        notes.append(
            f"Untuned reading: every arm's tuning trial nearest to `{t.shared_key}` = "
            f"{label(t.shared_value)} ({t.shared_why}); ranking there: "
            + ", ".join(f"`{a.name}`" for a in t.untuned)
            + "."
        )
    return notes


def plot_isolation(t: TunedAnalysis, path: Path) -> Path:
    """Per arm, the confirmed mean and 95% CI (the winner in color); crosses: the untuned reading."""
    names = [a.name for a in t.arms]
    x = np.arange(len(names))
    mean = np.array([a.score for a in t.arms], float)
    bounds = np.array([a.interval() for a in t.arms], float).reshape(-1, 2)
    err = np.nan_to_num(np.abs(bounds - mean[:, None]).T)
    fig = _figure(max(4.0, 1.0 * len(x) + 2.0), 3.4)
    ax = fig.add_subplot()
    colors = ["C1" if a.rank == 1 else "0.35" for a in t.arms]
    for i in range(len(x)):
        ax.errorbar(x[i], mean[i], yerr=err[:, i : i + 1], fmt="o", capsize=4, color=colors[i])
    untuned = np.array([np.nan if a.untuned_value is None else a.untuned_value for a in t.arms])
    if np.isfinite(untuned).any():
        ax.plot(x, untuned, "x", color="C0", label=f"at shared {t.shared_key}")
        ax.legend(fontsize=7)
    ax.set_xticks(x, labels=names, rotation=30 if sum(map(len, names)) > 40 else 0)
    ax.set_ylabel(t.metric)
    ax.set_title("each arm at its own best: mean and 95% CI over confirmation seeds", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_path(out: Path, metric: str) -> Path:
    """Where the isolation plot goes."""
    return out / f"tuned_{slug(metric)}.png"


def _confirm(space: Space) -> str:
    """``3 new seeds``, or adaptive ``2 to 6 new seeds (as the comparisons needed)``."""
    adaptive = space.adaptive
    if adaptive is None:
        return plural(space.confirm_seeds, "new seed")
    return f"{adaptive.min} to {adaptive.max} new seeds (as many as its comparisons needed)"
