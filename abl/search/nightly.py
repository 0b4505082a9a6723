"""Nightly sweeps: run the spaces of ``cluster/nightly.yaml``, compare each with its last nightly.

    abl nightly cluster/nightly.yaml

Every space runs as an ordinary sweep (``<root>/<name>/<timestamp>``) marked by a
``nightly.json``; the previous nightly of a space is its newest marked run. The verdicts
(:mod:`abl.results.digest`) go to ``<root>/<config name>/<timestamp>/digest.{md,html,json}``
and to an MLflow run of the experiment named like the config (default ``nightly``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from abl.errors import AblError, validation_message
from abl.rundir import new_run_dir, runs_of
from abl.search.engine import SweepOptions, default_tracking_uri
from abl.space import yamlfile
from abl.space.load import load_space
from abl.space.schema import Space

if typing.TYPE_CHECKING:
    from abl.results.digest import DigestPaths, Rules, SpaceDigest

NIGHTLY_JSON = "nightly.json"  # in a run dir: this run was made by `abl nightly`


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NightlySpace(_Strict):
    """One entry of ``spaces:``: a space file or built-in name, overrides, rule changes."""

    space: Annotated[str, Field(min_length=1)]  # as for `abl search SPACE`
    overrides: list[str] = []  # as for `abl search SPACE key=value ...`
    rules: dict[str, Any] = {}  # replaces these keys of the file's `rules:` for this space


class NightlyConfig(_Strict):
    """``cluster/nightly.yaml``: the spaces to run and the rules that make the night fail."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")] = "nightly"  # digests + experiment
    # last: the newest nightly of the space; last_clear: the newest in which no rule fired
    # (a regression then fires every night until fixed); the newest when none was clear.
    compare_with: Literal["last", "last_clear"] = "last"
    rules: dict[str, Any] = {}  # defaults for every space (keys of abl.results.digest.Rules)
    spaces: Annotated[list[NightlySpace], Field(min_length=1)]
    source: str = "<nightly>"


@dataclass(frozen=True)
class PlannedSpace:
    """A space of the nightly, loaded and checked, with its rules and previous nightly."""

    entry: NightlySpace
    space: Space
    rules: Rules
    previous: Path | None


@dataclass
class NightlyResult:
    """What :func:`run_nightly` did; ``fired`` decides the exit status."""

    digests: list[SpaceDigest]
    paths: DigestPaths
    tracking_uri: str
    mlflow_run_id: str | None = None
    mlflow_error: str | None = None  # why the digest is not on MLflow
    runs: list[Path] = field(default_factory=list)

    @property
    def fired(self) -> bool:
        """True when any rule of any space fired (``abl nightly`` then exits 1)."""
        return any(d.fired for d in self.digests)


def load_nightly(path: Path) -> NightlyConfig:
    """Read and validate a nightly config; every mistake is one AblError line.

    >>> load_nightly(Path("cluster/nightly.yaml")).spaces[0].space  # doctest: +SKIP
    'quickstart'
    """
    if not path.is_file():
        raise AblError(f"nightly config not found: {path}")
    raw = yamlfile.load_file(path)
    if not isinstance(raw, dict):
        raise AblError(
            f"a nightly config must be a mapping of keys to values; got {type(raw).__name__} ({path})"
        )
    try:
        config = NightlyConfig.model_validate({**raw, "source": str(path)})
    except ValidationError as exc:
        raise AblError(validation_message(exc, NightlyConfig, where=str(path))) from None
    rules_of(config, None)
    for i in range(len(config.spaces)):
        rules_of(config, i)
    return config


def rules_of(config: NightlyConfig, index: int | None) -> Rules:
    """The rules of ``spaces[index]`` (the file's defaults when ``index`` is None)."""
    from abl.results.digest import Rules

    raw = dict(config.rules)
    prefix = "rules"
    if index is not None:
        raw.update(config.spaces[index].rules)
        prefix = f"spaces.{index}.rules" if config.spaces[index].rules else "rules"
    try:
        return Rules.model_validate(raw)
    except ValidationError as exc:
        raise AblError(validation_message(exc, Rules, where=config.source, prefix=prefix)) from None


def plan_nightly(config: NightlyConfig, root: Path) -> list[PlannedSpace]:
    """Load every space with its overrides (all before any runs) and find its previous nightly."""
    planned, seen = [], {}
    for i, entry in enumerate(config.spaces):
        try:
            space = load_space(entry.space, entry.overrides)
        except AblError as exc:
            raise AblError(f"{exc} ({config.source}, spaces.{i})") from None
        if space.name in seen:
            raise AblError(
                f"every nightly space needs its own name (override it with name=...); "
                f"'{space.name}' is spaces.{seen[space.name]} and spaces.{i} ({config.source})"
            )
        if space.name == config.name:
            raise AblError(
                f"a space may not be named like the nightly ('{config.name}', where digests go); "
                f"rename it with name=... ({config.source}, spaces.{i})"
            )
        seen[space.name] = i
        planned.append(
            PlannedSpace(
                entry,
                space,
                rules_of(config, i),
                previous_nightly(root, space.name, clear=config.compare_with == "last_clear"),
            )
        )
    return planned


def previous_nightly(root: Path, name: str, *, clear: bool = False) -> Path | None:
    """The newest run of sweep ``name`` under ``root`` that ``abl nightly`` made.

    With ``clear``, the newest one in which no rule fired, if there is one.
    """
    runs = runs_of(root / name, marker=NIGHTLY_JSON)
    cleared = [p for p in runs if not _marked(p).get("fired", True)] if clear else []
    chosen = cleared or runs
    return chosen[-1].resolve() if chosen else None


def _marked(run_dir: Path) -> dict[str, Any]:
    try:
        info = json.loads((run_dir / NIGHTLY_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def run_nightly(
    config: NightlyConfig,
    planned: list[PlannedSpace],
    options: SweepOptions,
    *,
    console: Any = None,
) -> NightlyResult:
    """Run every planned space, compare it with its previous nightly, write and log the digest.

    A sweep that raises is a finding (``sweep_failed``), and the other spaces still run.

    >>> config = load_nightly(Path("cluster/nightly.yaml"))  # doctest: +SKIP
    >>> result = run_nightly(config, plan_nightly(config, root), SweepOptions(root=root))  # doctest: +SKIP
    """
    from abl.results.digest import compare_nightly, failed_digest, write_digest
    from abl.search.sweep import run_sweep

    out_dir = new_run_dir(options.root, config.name)
    stamp = out_dir.name
    tracking_uri = options.tracking_uri or default_tracking_uri(options.root)
    options = dataclasses.replace(options, tracking_uri=tracking_uri)
    digests, runs = [], []
    for plan in planned:
        if console is not None:
            console.print(f"[bold]nightly[/] {plan.space.name}: previous {plan.previous or 'none'}")
        try:
            sweep = run_sweep(plan.space, options, console=console)
        except Exception as exc:  # recorded as a finding; the other spaces still run
            digests.append(failed_digest(plan.space.name, None, plan.previous, _one_line(exc)))
            continue
        runs.append(sweep.run_dir)
        try:
            digest = compare_nightly(plan.previous, sweep.run_dir, plan.rules)
        except Exception as exc:  # e.g. rules.metric names no metric the trainable reports
            digest = failed_digest(plan.space.name, sweep.run_dir, plan.previous, _one_line(exc))
        _mark(sweep.run_dir, stamp, config, plan, out_dir, fired=digest.fired)
        digest.notes += (
            [f"{len(sweep.errors)} trial(s) raised: {sweep.errors[0]}"] if sweep.errors else []
        )
        digests.append(digest)
    title = f"{config.name} {stamp}"
    paths = write_digest(digests, out_dir, title=title)
    result = NightlyResult(digests, paths, tracking_uri, runs=runs)
    result.mlflow_run_id, result.mlflow_error = log_digest(result, config.name, stamp)
    return result


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _mark(
    run_dir: Path,
    stamp: str,
    config: NightlyConfig,
    plan: PlannedSpace,
    digest: Path,
    *,
    fired: bool,
) -> None:
    info = {
        "fired": fired,
        "nightly": stamp,
        "config": config.source,
        "space": plan.entry.space,
        "overrides": plan.entry.overrides,
        "previous": str(plan.previous) if plan.previous else None,
        "digest": str(digest),
        "finished": dt.datetime.now().isoformat(timespec="seconds"),
    }
    (run_dir / NIGHTLY_JSON).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def log_digest(result: NightlyResult, experiment: str, stamp: str) -> tuple[str | None, str | None]:
    """Log the digest as a run of MLflow experiment ``experiment``; returns ``(run_id, error)``.

    The tracking store may be down: the digest is on disk anyway, so the error is returned
    for the CLI to print, not raised.
    """
    try:
        from mlflow.tracking import MlflowClient

        from abl.search.sinks.mlflow import artifact_location

        client = MlflowClient(result.tracking_uri)
        exp = client.get_experiment_by_name(experiment)
        exp_id = (
            exp.experiment_id
            if exp is not None
            else client.create_experiment(experiment, artifact_location(result.tracking_uri))
        )
        tags = {
            "abl.nightly.fired": str(result.fired).lower(),
            "abl.nightly.spaces": ",".join(d.name for d in result.digests),
            "abl.nightly.digest": str(result.paths.markdown.parent),
        }
        run = client.create_run(exp_id, run_name=stamp, tags=tags)
        run_id = run.info.run_id
        client.log_metric(
            run_id, "nightly/rules_fired", sum(len(d.findings) for d in result.digests)
        )
        for path in result.paths.files():
            client.log_artifact(run_id, str(path), "digest")
        client.set_terminated(run_id, "FINISHED")
        return run_id, None
    except Exception as exc:  # reported by the CLI; the digest files are written already
        return None, f"digest not logged to MLflow ({_one_line(exc)})"
