"""The sections of report.md / report.html, each a function from the analysed run to blocks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from abl.results._design import label, varying
from abl.results._doc import Block, Bullets, Cell, Code, Heading, Para, Table
from abl.results.aggregate import Repeats, TrialSplit
from abl.results.effects import Effect
from abl.results.importance import Importance
from abl.results.run import RunData
from abl.trainables.metrics import metric_info

if TYPE_CHECKING:
    from abl.results._verdict import Verdict
    from abl.results.comparisons import Comparisons
    from abl.results.seeds import SeedReplay
    from abl.results.sequential import Comparison, SeedPlan
    from abl.results.tuned import TunedAnalysis

MAX_LISTED = 50  # failures listed one by one; the rest are counted


@dataclass
class Analysis:
    """Everything the sections show, computed once by build_report."""

    run: RunData
    metric: str
    mode: str
    k: int
    split: TrialSplit
    top: pd.DataFrame  # the best k completed trials
    repeats: Repeats
    importance: Importance
    effects: list[Effect]  # most important parameter first
    plots: dict[str, list[Path]] = field(default_factory=dict)  # section -> paths under run_dir
    tuned: TunedAnalysis | None = None  # a tuned ablation's arms at their best (space has tune:)
    comparisons: Comparisons | None = None  # per-axis matched comparisons (grid runs)
    verdict: Verdict | None = None  # what the report states first
    seeds: SeedReplay | None = None  # adaptive seeds replayed (repeats/confirm: {min, max})


def plural(n: int, word: str) -> str:
    """``1 trial``, ``2 trials``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def num(value: object) -> str:
    """A metric value as the logbooks print it: 6 significant digits."""
    return "" if value is None or pd.isna(value) else f"{float(value):.6g}"


def pct(value: float) -> str:
    """A share as a percentage with one decimal."""
    return "" if pd.isna(value) else f"{100 * value:.1f}%"


def duration(seconds: float) -> str:
    """``1h 02m`` or ``12m 30s``."""
    if pd.isna(seconds):
        return "n/a"
    s = round(float(seconds))
    return f"{s // 3600}h {s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


def header(a: Analysis) -> list[Block]:
    """Title, what was swept and how to rerun it (the logbooks open with the command)."""
    space = a.run.space
    adaptive = space.adaptive
    seeds = (
        plural(space.seeds if space.tune is None else space.confirm_seeds, "seed")
        if adaptive is None
        else f"{adaptive.min} to {adaptive.max} seeds (adaptive)"
    )
    how = (
        f"{space.search.algorithm} search, {seeds} per configuration"
        if space.tune is None
        else f"tuned ablation ({space.tune.algorithm} within every arm, "
        f"{seeds.replace('seed', 'confirmation seed')})"
    )
    lines = [
        f"Trainable `{space.trainable}`, {how}, ranked by `{a.metric}` ({a.mode}).",
        f"Run folder `{a.run.run_dir}`; rerun it with:",
    ]
    blocks: list[Block] = [Heading(f"{space.name}: which choices matter for {a.metric}", 1)]
    blocks += [Para(space.description)] if space.description else []
    return [
        *blocks,
        Para(" ".join(lines)),
        Code(f"abl search {a.run.run_dir / 'space.yaml'}", "bash"),
    ]


def summary(a: Analysis) -> list[Block]:
    """Trials by status, time spent, and what was left out of the ranking and why."""
    trials = a.run.trials
    counts = trials["status"].value_counts()
    rows = [[Cell(str(s)), Cell(str(n), numeric=True)] for s, n in counts.items()]
    rows.append([Cell("total", bold=True), Cell(str(len(trials)), bold=True, numeric=True)])
    notes = [
        f"Trial time {_spent(trials)} in all (sum of `wall_s`), sweep elapsed {_elapsed(trials)}.",
        f"Ranked: {plural(len(a.split.ok), 'completed trial')} with a finite `{a.metric}`.",
    ]
    if len(a.split.pruned):
        notes.append(
            f"{plural(len(a.split.pruned), 'pruned trial')} stopped early (the last value is not final): "
            "excluded from ranks, means and importance."
        )
    if len(a.split.failed) or len(a.split.no_value):
        n_bad = len(a.split.failed) + len(a.split.no_value)
        notes.append(f"{plural(n_bad, 'trial')} did not finish with a value: see Not ranked.")
    empty = empty_cells(trials, a.split.ok, a.run.params)
    if empty:
        shown = "; ".join(f"`{c}`" for c in empty[:5]) + (
            f"; and {len(empty) - 5} more" if len(empty) > 5 else ""
        )
        notes.append(
            f"**{plural(len(empty), 'configuration')} without a ranked trial** (every seed "
            f"failed, was pruned or is unfinished), so comparisons and importance leave "
            f"{'it' if len(empty) == 1 else 'them'} out: {shown}."
        )
    return [Heading("Sweep"), Table(["status", "trials"], rows), Bullets(notes)]


def empty_cells(trials: pd.DataFrame, ok: pd.DataFrame, params: list[str]) -> list[str]:
    """Configurations (``a=x, b=y``) that ran but have no ranked trial, in trial order."""
    keys = [p for p in params if p in trials]
    if not keys or trials.empty:
        return []

    def text(frame: pd.DataFrame) -> pd.Series:
        return (
            frame[keys]
            .map(label)
            .apply(
                lambda row: ", ".join(f"{k}={v}" for k, v in zip(keys, row, strict=True)), axis=1
            )
        )

    ranked = set(text(ok)) if len(ok) else set()
    return [c for c in dict.fromkeys(text(trials)) if c not in ranked]


def _spent(trials: pd.DataFrame) -> str:
    wall = pd.to_numeric(trials["wall_s"], errors="coerce") if "wall_s" in trials else None
    return duration(wall.sum()) if wall is not None and wall.notna().any() else "n/a"


def _elapsed(trials: pd.DataFrame) -> str:
    if "start" not in trials or "end" not in trials:
        return "n/a"
    start, end = (
        pd.to_numeric(trials["start"], errors="coerce"),
        pd.to_numeric(trials["end"], errors="coerce"),
    )
    return duration(end.max() - start.min()) if start.notna().any() and end.notna().any() else "n/a"


def nothing_to_rank(a: Analysis) -> list[Block]:
    n = len(a.run.trials)
    why = (
        "no trial has started" if n == 0 else f"no completed trial of {n} has a finite `{a.metric}`"
    )
    return [Para(f"**Nothing to rank**: {why}.")]


def top_table(a: Analysis) -> list[Block]:
    """The logbook table: the best k trials, linked to MLflow, with the parameters that vary
    and the metrics that score (the best of a column in bold where "best" means something)."""
    run, top = a.run, a.top
    params = varying(a.split.ok, [p for p in run.params if p in top])
    params += ["seed"] if _seeds_vary(a) else []
    metrics = shown_metrics(run, top)
    best = {m: best_value(top[m], run.best_mode(m)) for m in metrics}
    folders = {str(t) for t in top["trial_id"] if (run.run_dir / "tune" / str(t)).is_dir()}
    rows = []
    for rank, (_, row) in enumerate(top.iterrows(), start=1):
        tid = str(row["trial_id"])
        cells = [Cell(str(rank)), Cell(tid, url=run.trial_url(row.get("mlflow_run_id")))]
        cells += (
            [Cell(f"tune/{tid}", url=f"tune/{tid}") if tid in folders else Cell("")]
            if folders
            else []
        )
        cells += [Cell(label(row[p])) for p in params]
        cells += [
            Cell(sig(row[m]), bold=best[m] is not None and row[m] == best[m], numeric=True)
            for m in metrics
        ]
        rows.append(cells)
    title = f"Top {len(top)} of {len(a.split.ok)} by {a.metric}"
    head = ["#", "trial", *(["folder"] if folders else []), *params, *metrics]
    return [Heading(title), Table(head, rows)]


def shown_metrics(run: RunData, top: pd.DataFrame) -> list[str]:
    """The ranking metric, then every other score: declared measurements (``perf/*``,
    ``model/params``, ``lr``) are left out; metrics abl does not know are kept."""
    out = [run.metric] if run.metric in top else []
    for m in run.metrics:
        info = metric_info(m)
        if m in top and m not in out and (info is None or info.mode is not None):
            out.append(m)
    return out


def _seeds_vary(a: Analysis) -> bool:
    return "seed" in a.top and a.run.trials["seed"].nunique() > 1


def best_value(values: pd.Series, mode: str | None) -> float | None:
    """The best of a column by ``mode``; None without a direction, or where all values are
    equal (nothing to point out)."""
    values = pd.to_numeric(values, errors="coerce").dropna()
    if mode is None or values.nunique() < 2:
        return None
    return values.min() if mode == "min" else values.max()


def sig(value: object, digits: int = 4) -> str:
    """A number for a table: 4 significant digits."""
    return "" if value is None or pd.isna(value) else f"{float(value):.{digits}g}"


def repeats(a: Analysis) -> list[Block]:
    """Configurations ranked by mean over seeds, with CIs and the leader/runner-up overlap."""
    reps = a.repeats
    if not reps.has_repeats:
        return []
    table = reps.table.head(a.k)
    params = varying(reps.table, reps.params)
    rows = [
        [
            Cell(str(r["rank"])),
            *(Cell(label(r[p])) for p in params),
            Cell(_mean_std(r), numeric=True),
            Cell(str(r["n"]), numeric=True),
            Cell(_ci(r), numeric=True),
        ]
        for _, r in table.iterrows()
    ]
    head = ["rank", *params, f"{a.metric} mean ± std", "n", f"{reps.confidence:.0%} CI"]
    intro = (
        f"Configurations that differ only by seed, ranked by their mean `{a.metric}` over seeds "
        f"(t-interval; pruned trials excluded). {len(reps.table)} configurations."
    )
    return [Heading("Repeats"), Para(intro), Table(head, rows), Para(_overlap(reps))]


def seeds(a: Analysis) -> list[Block]:
    """Adaptive seeds: per configuration the seeds it ran and why it stopped, and the decisions."""
    replay = a.seeds
    if replay is None:
        return []
    from abl.results.sequential import procedure

    plan, found = replay.plan, replay.assessment
    intro = (
        f"Adaptive seeds ({plan.min} to {plan.max} per "
        f"{'arm' if replay.key == 'confirm' else 'configuration'}): "
        f"{plural(replay.trials, 'trial')} ran, {replay.share:.0%} of the {replay.most} that "
        f"a fixed `{replay.key}: {plan.max}` runs. {procedure(plan)}"
    )
    shown = replay.comparisons
    rows = [
        [
            *(Cell(label(values.get(k))) for k in replay.keys),
            Cell(str(st.seeds), numeric=True),
            Cell(_why(st.index, st.seeds, st.why, shown, plan)),
        ]
        for st, values in zip(found.configs, replay.swept, strict=True)
    ]
    decided = [_decision(c, plan.margin) for c in shown if c.verdict != "open"]
    still = [c for c in shown if c.verdict == "open"]
    notes = decided or ["No comparison was decided."]
    if still:
        notes.append(
            f"{plural(len(still), 'comparison')} still open at the last look: "
            + "; ".join(_pair_name(c) for c in still[:10])
            + ("; ..." if len(still) > 10 else "")
        )
    caveat = (
        "These decisions account for the looks. The other tests of this report (per-axis "
        "comparisons, F-tests, importance) treat the seeds as if their number had been fixed "
        "in advance: with seeds added where results were close, their p-values are optimistic."
    )
    return [
        Heading("Seeds"),
        Para(intro),
        Table([*replay.keys, "seeds", "why it stopped"], rows),
        Bullets(notes),
        Para(caveat),
    ]


def _why(index: int, seeds: int, why: str, shown: list[Comparison], plan: SeedPlan) -> str:
    """Why a configuration stopped: still open at ``max``, or the look by which every one of
    its comparisons was decided; and the seeds it ran ahead of a round that then needed none."""
    mine = [c for c in shown if index in c.members]
    open_ = [_pair_name(c) for c in mine if c.verdict == "open"]
    if open_:
        return f"reached max ({plan.max} seeds) with {'; '.join(open_[:3])} still open"
    looks = [c.look for c in mine if c.look is not None]
    if not looks or any(w in why for w in ("pruned", "failed", "diverged", "no value")):
        return why
    last = max(looks)
    used = plan.min + last
    which = next(c for c in mine if c.look == last)
    text = f"every comparison decided by {used} seeds (the last: {_pair_name(which)})"
    if seeds > used:
        text += f"; {plural(seeds - used, 'seed')} started ahead of that look, not needed"
    return text


def _pair_name(c: Comparison) -> str:
    return f"`{c.axis}`: {c.a} vs {c.b}" if c.axis else f"{c.a} vs {c.b}"


def _decision(c: Comparison, margin: float | None) -> str:
    where = f"`{c.axis}`: " if c.axis else ""
    how = f"Holm p={sig(c.p_holm, 2)}, at look {c.look}: {plural(c.n, 'matched pair')}"
    if c.verdict == "equivalent":
        return f"{where}{c.a} and {c.b} tie within ±{margin:g} ({how})"
    if c.verdict == "futile":
        power = f"conditional power {pct(c.power)}" if c.power is not None else "futility"
        return (
            f"{where}{c.a} vs {c.b} not distinguishable: stopped at look {c.look} "
            f"({plural(c.n, 'matched pair')}), a decision by max seeds was unlikely ({power})"
        )
    if c.verdict not in ("a", "b"):
        return f"{where}{c.a} vs {c.b}: {c.verdict} ({how})"
    better, worse = (c.a, c.b) if c.verdict == "a" else (c.b, c.a)
    return f"{where}{better} better than {worse} by {sig(abs(c.diff))} ({how})"


def _mean_std(row: pd.Series) -> str:
    return sig(row["mean"]) + ("" if pd.isna(row["std"]) else f" ± {sig(row['std'], 2)}")


def _ci(row: pd.Series) -> str:
    return "" if pd.isna(row["ci_low"]) else f"[{sig(row['ci_low'])}, {sig(row['ci_high'])}]"


def _overlap(reps: Repeats) -> str:
    if reps.overlap is None:
        return "Fewer than two configurations with two or more seeds at the top: no CI comparison."
    first, second = reps.table.iloc[0], reps.table.iloc[1]
    if reps.overlap:
        return (
            f"**The leader's CI {_ci(first)} overlaps the runner-up's {_ci(second)}**: at "
            f"{int(first['n'])} and {int(second['n'])} seeds the two are not distinguishable."
        )
    return f"The leader's CI {_ci(first)} does not overlap the runner-up's {_ci(second)}."


def failures(a: Analysis) -> list[Block]:
    """Every trial that was not ranked, with its status and error: none is silently dropped."""
    bad = pd.concat([a.split.failed, a.split.no_value])
    if bad.empty and a.split.pruned.empty:
        return []
    blocks: list[Block] = [Heading("Not ranked")]
    if len(a.split.pruned):
        ids = ", ".join(map(str, a.split.pruned["trial_id"].head(MAX_LISTED)))
        more = (
            f" and {len(a.split.pruned) - MAX_LISTED} more"
            if len(a.split.pruned) > MAX_LISTED
            else ""
        )
        blocks.append(Para(f"Pruned by the scheduler ({len(a.split.pruned)}): {ids}{more}."))
    if bad.empty:
        return blocks
    params = [p for p in a.run.params if p in bad]
    rows = [
        [
            Cell(str(r["trial_id"]), url=a.run.trial_url(r.get("mlflow_run_id"))),
            Cell(_status(r, a.metric)),
        ]
        + [Cell(_error_line(r.get("error")))]
        + [Cell(label(r[p])) for p in params]
        for _, r in bad.head(MAX_LISTED).iterrows()
    ]
    blocks.append(Table(["trial", "status", "error", *params], rows))
    if len(bad) > MAX_LISTED:
        blocks.append(
            Para(f"... and {len(bad) - MAX_LISTED} more: see `trials.parquet` (`status`, `error`).")
        )
    return blocks


def _status(row: pd.Series, metric: str) -> str:
    status = str(row["status"])
    return f"{status}, no {metric}" if status == "completed" else status


def _error_line(error: object, width: int = 120) -> str:
    if not isinstance(error, str) or not error.strip():
        return ""
    line = error.strip().splitlines()[-1]  # a traceback's last line names the exception
    return line if len(line) <= width else line[: width - 3] + "..."
