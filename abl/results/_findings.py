"""The findings of report.md / report.html: importance, marginal effects, heatmaps, curves."""

from __future__ import annotations

from abl.results._design import label
from abl.results._doc import Block, Bullets, Cell, Heading, Images, Para, Table
from abl.results._sections import Analysis, num, pct
from abl.results.effects import Effect
from abl.results.importance import (
    IMPORTANCE_METHODS,
    FTest,
    ImportanceResult,
    importance_method,
)

MAX_INTERACTIONS = 5  # rows of the interaction table


def importance(a: Analysis) -> list[Block]:
    """A table of scores per group (one column per method), interactions, notes, disagreements."""
    imp = a.importance
    blocks: list[Block] = [Heading("Which parameters matter")]
    if a.verdict is not None and a.verdict.noise and imp.groups:
        blocks.append(
            Para(
                "**These shares rank noise**: no ablation effect is detectable at this budget "
                "(see Verdict), so the table below only orders parameters by how the noise fell."
            )
        )
    for group, reason in imp.skipped.items():
        blocks.append(Para(f"{_group_name(group)}Nothing to decompose: {reason}."))
    for group, results in imp.groups.items():
        if imp.by:
            blocks.append(Heading(f"`{group}`", 3))
        blocks += [_scores_table(results), *_interactions(results), _method_notes(results)]
        if group in imp.disagreements():
            tops = ", ".join(
                f"{m} ranks `{p}` first" for m, p in imp.disagreements()[group].items()
            )
            blocks.append(Para(f"**The methods disagree on the top parameter**: {tops}."))
    return blocks


def _group_name(group: str) -> str:
    return "" if group == "all" else f"`{group}`: "


def _scores_table(results: list[ImportanceResult]) -> Table:
    order = results[0].ranking()
    ftests = {t.term: t for r in results for t in r.ftests}
    head = ["parameter", *(r.method for r in results)] + (["F", "p"] if ftests else [])
    rows = [
        [Cell(p), *(Cell(_share(r, p), numeric=True) for r in results)]
        + (_test_cells(ftests.get(p)) if ftests else [])
        for p in order
    ]
    return Table(head, rows)


def _share(r: ImportanceResult, param: str) -> str:
    """``88.0% [80, 93]``: the share and, where the method has one, its seed interval."""
    text = pct(r.scores.get(param, float("nan")))
    if param in r.intervals:
        low, high = r.intervals[param]
        text += f" [{100 * low:.0f}, {100 * high:.0f}]"
    return text


def _test_cells(test: FTest | None) -> list[Cell]:
    """F and p of a test (empty cells without one)."""
    if test is None:
        return [Cell(""), Cell("")]
    p = "<0.001" if test.p < 0.001 else f"{test.p:.3f}"
    return [Cell(f"{test.f:.4g}", numeric=True), Cell(p, numeric=True)]


def _interactions(results: list[ImportanceResult]) -> list[Block]:
    with_pairs = [r for r in results if r.interactions]
    if not with_pairs:
        return []
    r = with_pairs[0]
    tests = {t.term: t for t in r.ftests}
    pairs = sorted(r.interactions.items(), key=lambda kv: -kv[1])[:MAX_INTERACTIONS]
    rows = [
        [Cell(f"{x} × {y}"), Cell(pct(share), numeric=True)]
        + (_test_cells(tests.get(f"{x} × {y}")) if tests else [])
        for (x, y), share in pairs
    ]
    head = ["pair", "share", *(["F", "p"] if tests else [])]
    return [Para(f"Strongest pairwise interactions ({r.method}):"), Table(head, rows)]


def _method_notes(results: list[ImportanceResult]) -> Bullets:
    notes = []
    for r in results:
        what = importance_method(r.method).description if r.method in IMPORTANCE_METHODS else ""
        notes.append(
            f"**{r.method}** ({r.n_trials} trials): {what}" + (f"; {r.note}" if r.note else "")
        )
    if any(r.intervals for r in results):
        notes.append(
            "The bracket after a share is its 95% interval from redrawing every grid cell's "
            "seeds with replacement: how far the share moves with seed noise alone. A narrow "
            "interval far from 0 is a firm ranking; intervals that overlap do not order the "
            "parameters."
        )
    return Bullets(notes)


def effects(a: Analysis) -> list[Block]:
    """A summary row per parameter (best value, runner-up, effect size), then each in detail."""
    if not a.effects:
        return []
    rows = [
        [
            Cell(e.param),
            Cell(label(e.best), bold=True),
            Cell(label(e.runner_up)),
            Cell(num(_gap(e)), numeric=True),
            Cell(_d(e.d), numeric=True),
            Cell(num(e.spread), numeric=True),
        ]
        for e in a.effects
    ]
    head = ["parameter", "best value", "runner-up", "gap", "Cohen's d", "best - worst"]
    blocks: list[Block] = [
        Heading("Marginal effects"),
        Para(
            f"Mean `{a.metric}` at each value of a parameter, over every other setting "
            "(continuous parameters in quantile bins). The gap is best minus runner-up; Cohen's d "
            "is that gap in pooled standard deviations (0.2 small, 0.5 medium, 0.8 large)."
        ),
        Table(head, rows),
    ]
    plots = dict(zip([e.param for e in a.effects], a.plots.get("effects", []), strict=False))
    for e in a.effects:
        blocks += [Heading(f"`{e.param}`", 3), _effect_table(e, a.mode)]
        blocks += [Images([plots[e.param]])] if e.param in plots else []
    return blocks


def _gap(e: Effect) -> float:
    t = e.table.set_index("value")["mean"]
    return float(t[e.runner_up] - t[e.best]) if e.runner_up is not None else float("nan")


def _d(d: float) -> str:
    return "" if d != d else ("inf" if d == float("inf") else f"{d:.2f}")


def _effect_table(e: Effect, mode: str) -> Table:
    rows = []
    ranked = e.table.sort_values("mean", ascending=mode == "min", kind="stable")
    for _, r in ranked.iterrows():
        best = r["value"] == e.best
        ci = "" if r["ci_low"] != r["ci_low"] else f"[{num(r['ci_low'])}, {num(r['ci_high'])}]"
        rows.append(
            [
                Cell(label(r["value"]), bold=best),
                Cell(num(r["mean"]), bold=best, numeric=True),
                Cell(ci, numeric=True),
                Cell(str(int(r["n"])), numeric=True),
            ]
        )
    return Table(["value", "mean", "95% CI", "n"], rows)


def heatmaps(a: Analysis, pairs: list[tuple[str, str]]) -> list[Block]:
    paths = a.plots.get("heatmaps", [])
    if not paths:
        return []
    names = ", ".join(f"`{x}` × `{y}`" for x, y in pairs)
    text = f"Mean `{a.metric}` over every pair of values of {names}."
    return [Heading("Interactions"), Para(text), Images(paths)]


def curves(a: Analysis) -> list[Block]:
    paths = a.plots.get("curves", [])
    if not paths:
        return []
    return [
        Heading("Learning curves"),
        Para(f"`{a.metric}` at every report of the top trials."),
        Images(paths),
    ]
