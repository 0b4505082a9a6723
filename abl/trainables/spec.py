"""Trainables: a task plus the models ``model.kind`` may pick, run by the one training loop.

A trial config is flat with dotted keys (``model.pe_type``, ``data.time_steps``, ``train.lr``,
``seed``): the same keys land in MLflow params and Parquet columns. Its schema depends on
``model.kind``, because each model has its own config; each section is validated by its
pydantic model (see :mod:`abl.trainables.config`), read without importing torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic.fields import FieldInfo

from abl.errors import AblError, did_you_mean, one_of
from abl.trainables.config import ComponentConfig, Knob, check, knobs, nested
from abl.trainables.models import MODELS
from abl.trainables.registry import Registry
from abl.trainables.tasks import TASKS
from abl.trainables.train_config import TrainConfig

# Reported by the loop for every trainable, whatever its task (plus LAST_POSITION_METRICS where
# the task's targets are next steps).
LOOP_METRICS = (
    "train/loss",
    "val/loss",
    "epoch",
    "lr",
    "perf/samples_per_s",
    "perf/flops_per_s",
    "perf/torch_threads",
    "model/params",
)
LAST_POSITION_METRICS = ("val/loss_last",)  # tasks with next_step_targets


class TrialSeed(ComponentConfig):
    """The one top-level key of a trial config besides ``model.kind``."""

    seed: int = Field(
        0, description="random seed of the trial: init and batch order (not data.seed)"
    )


@dataclass(frozen=True)
class TrainableSpec:
    """A registered trainable: which task it trains on and which models it can build."""

    name: str
    task: str  # a TASKS name
    models: tuple[str, ...]  # MODELS names that model.kind may take; the first is the default
    description: str

    @property
    def default_model(self) -> str:
        return self.models[0]

    def sections(self, kind: str) -> dict[str, type]:
        """``{"model": ..., "data": ..., "train": ...}`` config classes for a model kind."""
        self.check_kind(kind, "model.kind")
        return {
            "model": MODELS.config_of(kind),
            "data": TASKS.config_of(self.task),
            "train": TrainConfig,
        }

    def check_kind(self, kind: Any, where: str) -> str:
        """A built-in model of this trainable, a plugin's registered model, or ``pkg.mod:Class``."""
        if isinstance(kind, str) and (":" in kind or kind in MODELS.plugin_names()):
            MODELS.get(kind)
            return kind
        if kind not in self.models:
            hint = did_you_mean(str(kind), self.models)
            raise AblError(
                f"model.kind of trainable '{self.name}' must be one of {one_of(self.models)}; "
                f"got {kind!r}{hint} ({where})"
            )
        return kind

    def schema(self, kind: str) -> dict[str, Knob]:
        """Every flat key a trial of this model kind accepts, with its type and default."""
        out = {
            "seed": Knob("seed", TrialSeed.model_fields["seed"]),
            "model.kind": Knob(
                "model.kind",
                FieldInfo(
                    annotation=str, default=self.default_model, description="which model to build"
                ),
            ),
        }
        for section, cls in self.sections(kind).items():
            out.update((k.name, k) for k in knobs(cls, section))
        return out

    def all_keys(self) -> set[str]:
        """Keys accepted by at least one model kind."""
        return {k for kind in self.models for k in self.schema(kind)}

    def metrics(self) -> tuple[str, ...]:
        """Every metric a trial of this trainable reports."""
        config = TASKS.config_of(self.task)
        if hasattr(config, "task_metrics"):  # a built-in's, read without importing torch
            metrics, next_step = config.task_metrics, config.task_next_step_targets
        else:
            task = TASKS.get(self.task)
            metrics, next_step = task.metrics, task.next_step_targets
        last = LAST_POSITION_METRICS if next_step else ()
        return LOOP_METRICS + last + tuple(metrics)

    def resolve(self, given: dict[str, Any], where: str) -> dict[str, Any]:
        """The full flat trial config: defaults of the chosen kind, overlaid with ``given``.

        Every given key and value is checked against the schema of its model kind; values come
        back as their fields' types (``train.lr: 1`` -> ``1.0``).
        """
        kind = self.check_kind(given.get("model.kind", self.default_model), where)
        schema = self.schema(kind)
        for key in given:
            if key not in schema:
                raise AblError(self._unknown_key(key, kind, where))
        parts = nested({k: v for k, v in given.items() if k != "model.kind"})
        top = check(TrialSeed, parts.get("", {}), section="", where=where)
        config: dict[str, Any] = {"seed": top.seed, "model.kind": kind}
        for section, cls in self.sections(kind).items():
            values = check(cls, parts.get(section, {}), section=section, where=where)
            config.update((f"{section}.{name}", value) for name, value in values)
        return config

    def _unknown_key(self, key: str, kind: str, where: str) -> str:
        owners = [k for k in self.models if k != kind and key in self.schema(k)]
        if owners:
            return (
                f"{key} does not apply to model.kind={kind} (it belongs to {one_of(owners)}); "
                f"set it under `when: [{{if: {{model.kind: {owners[0]}}}, ...}}]` ({where})"
            )
        known = sorted(set(self.schema(kind)) | self.all_keys())
        return f"unknown parameter '{key}' for trainable '{self.name}'{did_you_mean(key, known)} ({where})"

    def trial_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """``config`` less the None-valued keys its model kind does not have (Tune gives every
        trial every key of the param space, None where the trial's preset lacks it)."""
        schema = self.schema(config.get("model.kind") or self.default_model)
        return {k: v for k, v in config.items() if k in schema or v is not None}

    def preflight(self, configs: Sequence[dict[str, Any]]) -> None:
        """Build every distinct task and model of ``configs`` (models on the meta device)."""
        from abl.trainables.loop import preflight

        preflight(configs, self)

    def restart_lines(self, trials_dir: Path, trial_ids: Sequence[str]) -> list[str]:
        """None: Tune restores a trial of the shared loop from its own checkpoints."""
        return []

    def run(self, config: dict[str, Any], trial: Any) -> None:
        """One trial through the shared training loop (its checkpoints go through Tune)."""
        from abl.trainables.loop import run_trial

        run_trial(config, self)


TRAINABLES: Registry = Registry("trainable", {})
for _spec in (
    TrainableSpec(
        name="forecast",
        task="timeseries",
        models=("att", "att_mh", "lstm"),
        description="attention (single- or multi-head) or LSTM forecaster of a univariate time series",
    ),
    TrainableSpec(
        name="charlm",
        task="charlm",
        models=("gpt", "bigram", "bigram_mf", "bigram_att"),
        description="character-level language model: GPT attention variants and the bigram family",
    ),
    TrainableSpec(
        name="icl_linreg",
        task="linreg",
        models=("looped",),
        description="looped transformer learning linear regression in context",
    ),
    TrainableSpec(
        name="copy",
        task="copy",
        models=("latent",),
        description="latent 'thinker' model copying (flipping, rolling) digit strings",
    ),
    TrainableSpec(
        name="addition",
        task="addition",
        models=("latent",),
        description="latent 'thinker' model adding numbers in base b",
    ),
):
    TRAINABLES.register(_spec.name, builtin=True)(_spec)
