"""``python -m bench [--quick] [--only NAME]... [--repeats N] [--gpu F] [--out PATH]``.

Runs each figure ``--repeats`` times (default: the figure's own REPEATS, else 3), prints
every measure as it comes, and writes RESULTS.md (default ``bench/RESULTS.md``). Exits 1 when
a figure raised; a missed target is a result, not a failure.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path

import click

from bench import FIGURES, default_repeats, figure_module
from bench._env import BENCH_DIR, GPU_ENV, stop_ray
from bench._figure import Figure
from bench._report import FigureResult, machine, render, verdict_of


def run_figure(name: str, *, quick: bool, repeats: int) -> FigureResult:
    """Every repeat of one figure; an exception is recorded with its message, not raised."""
    module = figure_module(name)
    result = FigureResult(name=name, title=(module.__doc__ or name).strip().splitlines()[0])
    start = time.perf_counter()
    try:
        for i in range(repeats):
            fig: Figure = module.run(quick)
            result.title = fig.title
            result.runs.append(fig)
            echo_run(fig, i, repeats)
            if fig.skipped:
                break
    except Exception as exc:
        traceback.print_exc()
        result.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
    result.seconds = time.perf_counter() - start
    click.echo(f"{name}: {verdict_of(result)} ({result.seconds:.0f} s)", err=True)
    return result


def echo_run(fig: Figure, i: int, repeats: int) -> None:
    """One line per measure of one repeat, on stderr."""
    if fig.skipped:
        click.echo(f"{fig.name}: skipped: {fig.skipped}", err=True)
        return
    for m in fig.measures:
        target = f"  (target {m.target})" if m.target else ""
        unit = f" {m.unit}" if m.unit else ""
        click.echo(
            f"{fig.name} {i + 1}/{repeats}: {m.name} = {m.value:.4g}{unit}{target}", err=True
        )


@click.command()
@click.option("--quick", is_flag=True, help="Tiny sizes (CI): the harness runs, numbers are rough.")
@click.option(
    "--only",
    "only",
    multiple=True,
    type=click.Choice(list(FIGURES)),
    help="Run this figure only (repeatable).",
)
@click.option("--repeats", type=click.IntRange(min=1), default=None, help="Repeats per figure.")
@click.option(
    "--gpu",
    type=click.FloatRange(min=0, max=1, min_open=True),
    default=None,
    help="Give each trial this share of a GPU (resources.gpu) and train the loops on cuda.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=BENCH_DIR / "RESULTS.md",
    show_default=True,
    help="Where to write the results.",
)
def main(
    quick: bool, only: tuple[str, ...], repeats: int | None, gpu: float | None, out: Path
) -> None:
    """Benchmark abl against raw Ray Tune and a sequential loop; write RESULTS.md."""
    if gpu is not None:
        os.environ[GPU_ENV] = str(gpu)  # read by bench._env in every figure
    names = list(only) or list(FIGURES)
    info = machine()
    command = "python -m bench " + " ".join(sys.argv[1:])
    results = []
    try:
        for name in names:
            n = repeats or (1 if quick else default_repeats(name))
            results.append(run_figure(name, quick=quick, repeats=n))
            out.write_text(render(results, info, command.strip()), encoding="utf-8")
    finally:
        stop_ray()
    click.echo(f"wrote {out}", err=True)
    if any(r.error for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main(prog_name="python -m bench")
