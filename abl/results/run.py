"""A run directory as the results modules see it: its space, its trials, its MLflow links.

Everything comes from the run directory's files (``space.yaml``, the Parquet stores and
``mlflow.json``); neither Ray nor MLflow is needed::

    from pathlib import Path
    from abl.results import load_run, resolve_run

    run = load_run(resolve_run("quickstart", root=Path("abl-runs")))
    print(run.trials[["trial_id", "status", run.metric]])
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from abl.errors import AblError, did_you_mean, one_of
from abl.results.store import _COMPACTED, _parts, read_trials
from abl.rundir import HISTORY, MLFLOW_JSON, SPACE_FILE
from abl.space import yamlfile
from abl.space.schema import Space, parse_space
from abl.trainables.metrics import metric_mode

LOCAL_UI = "http://127.0.0.1:5000"  # where `abl ui` serves a local (SQLite) tracking store
Mode = Literal["min", "max"]


@dataclass(frozen=True)
class RunData:
    """One run directory, loaded: the resolved space and one pandas row per trial."""

    run_dir: Path
    space: Space
    trials: pd.DataFrame  # read_trials() as pandas; the space's metric column always exists
    params: list[str]  # the config keys the space varies, seed excluded, in file order
    metrics: list[str]  # numeric metric columns (last values), the space's metric first
    mlflow: dict[str, Any] | None  # mlflow.json, when the sweep logged to MLflow

    @property
    def metric(self) -> str:
        """The metric the space ranks trials by."""
        return self.space.metric

    def check_metric(self, metric: str | None) -> str:
        """``metric`` (default: the space's) if the run has it, else an AblError listing them."""
        metric = metric or self.metric
        if metric not in self.metrics:
            raise AblError(
                f"metric must be one of {one_of(self.metrics) or '(none recorded)'}; got "
                f"'{metric}'{did_you_mean(metric, self.metrics)} ({self.run_dir})"
            )
        return metric

    def check_param(self, param: str) -> str:
        """``param`` if the space varies it, else an AblError listing the varying keys."""
        if param not in self.params:
            raise AblError(
                f"parameter must be one of those the sweep varies ({one_of(self.params) or 'none'}); "
                f"got '{param}'{did_you_mean(param, self.params)} ({self.run_dir})"
            )
        return param

    def mode_of(self, metric: str, given: str | None = None) -> Mode:
        """Which way ``metric`` is better: the space's mode for its metric, the declared one
        for a built-in metric (abl.trainables.metrics), else ``given``; never a guess."""
        if metric == self.metric:
            return self.space.mode
        declared = metric_mode(metric)
        if given is not None and declared is not None and given != declared:
            raise AblError(
                f"{metric} is better when {'lower' if declared == 'min' else 'higher'} "
                f"(mode {declared}); got --mode {given}"
            )
        if declared is not None:
            return declared
        if given in ("min", "max"):
            return given  # type: ignore[return-value]
        raise AblError(
            f"{metric} has no declared direction (a measurement, or a metric abl does not "
            f"know): give --mode min or --mode max to rank by it ({self.run_dir})"
        )

    def best_mode(self, metric: str) -> Mode | None:
        """The direction in which ``metric`` has a best value: the space's mode for its metric,
        the declared one for a built-in score, None for measurements and unknown metrics."""
        return self.space.mode if metric == self.metric else metric_mode(metric)

    def trial_url(self, mlflow_run_id: Any) -> str | None:
        """The MLflow UI page of a trial's child run, or None without MLflow."""
        if not (self.mlflow or {}).get("experiment_id") or not isinstance(mlflow_run_id, str):
            return None
        if not mlflow_run_id:
            return None
        uri = str(self.mlflow.get("tracking_uri") or "")
        base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else LOCAL_UI
        return f"{base}/#/experiments/{self.mlflow.get('experiment_id')}/runs/{mlflow_run_id}"

    def history(self, trial_ids: Sequence[str] | None, metrics: Sequence[str]) -> pd.DataFrame:
        """``trial_id, step`` and ``metrics`` of the given trials only (None: every trial, still
        only those columns)."""
        return read_history_of(self.run_dir, trial_ids, metrics)


def load_run(run_dir: Path) -> RunData:
    """Read a run directory's space, trials and MLflow links (see :class:`RunData`)."""
    run_dir = Path(run_dir)
    space_file = run_dir / SPACE_FILE
    if not space_file.is_file():
        raise AblError(f"a run directory holds {SPACE_FILE}; none in {run_dir}")
    space = parse_space(yamlfile.load_file(space_file), source=str(space_file))
    trials = read_trials(run_dir).to_pandas()
    if "trial_id" not in trials.columns:  # no trial has started yet
        trials = pd.DataFrame({"trial_id": pd.Series(dtype=str), "status": pd.Series(dtype=str)})
    if space.metric not in trials.columns:
        trials[space.metric] = math.nan
    params = [k for k in space.sweep_keys() if k != "seed" and k in trials.columns]
    return RunData(
        run_dir=run_dir,
        space=space,
        trials=trials,
        params=params,
        metrics=_metric_columns(trials, space.metric),
        mlflow=_mlflow_info(run_dir),
    )


def _metric_columns(trials: pd.DataFrame, first: str) -> list[str]:
    found = [
        c
        for c in trials.columns
        if "/" in c
        and not c.startswith("best/")
        and pd.api.types.is_numeric_dtype(trials[c])
        and not pd.api.types.is_bool_dtype(trials[c])
    ]
    return [first, *sorted(c for c in found if c != first)]


def _mlflow_info(run_dir: Path) -> dict[str, Any] | None:
    """``mlflow.json``: the sweep's tracking URI, and its experiment and parent run once created.

    A sweep whose tracking server was down at the start has the URI without an experiment id;
    that URI is still where its runs belong (``abl sync`` sends them there).
    """
    try:
        info = json.loads((run_dir / MLFLOW_JSON).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("tracking_uri") else None


def read_history_of(
    run_dir: Path, trial_ids: Sequence[str] | None, metrics: Sequence[str]
) -> pd.DataFrame:
    """History rows of ``trial_ids`` (None: all) with ``trial_id, step`` and ``metrics``.

    Reads part by part with a row filter and only the needed columns, so memory stays bounded
    by the selected trials, however long the sweep; a compacted part shadows older parts, as
    in :func:`abl.results.store.read_table`.
    """
    want = ["trial_id", "step", *metrics]
    tables: list[pa.Table] = []
    for _, part in reversed(_parts(Path(run_dir) / HISTORY)):
        schema = pq.read_schema(part)
        cols = [c for c in want if c in schema.names]
        if "trial_id" in cols and (trial_ids is None or trial_ids):
            where = None if trial_ids is None else [("trial_id", "in", list(trial_ids))]
            rows = pq.read_table(part, columns=cols, filters=where)
            tables.append(rows.replace_schema_metadata(None))
        if (schema.metadata or {}).get(_COMPACTED) is not None:
            break
    if not tables:
        return pd.DataFrame(columns=want)
    table = pa.concat_tables(tables[::-1], promote_options="permissive")
    frame = table.to_pandas()
    return frame.reindex(columns=want)
