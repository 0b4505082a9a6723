"""The ``data.*`` knobs of every built-in task, torch-free.

Each task module imports its config from here (``TimeSeriesTask.Config``), and the trainable
specs read them without importing the tasks, so validating a space needs no torch. Rules of a
single value sit on its field; rules between knobs stay in the task's ``__init__``. What a task
reports (``task_metrics``, ``task_next_step_targets``) is said here too, for the same reason:
the task class takes its ``metrics`` and ``next_step_targets`` from its config.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from abl.trainables.config import ComponentConfig

# The description of every task's ``data.seed`` field.
DATA_SEED_HELP = (
    "seed of the data (synthetic series, validation draws); the trial seed drives init and "
    "batch order"
)


def data_seed() -> int:
    """``data.seed``: a field of every task whose data or validation set is random."""
    return Field(0, description=DATA_SEED_HELP)  # type: ignore[no-any-return]


class TimeSeriesConfig(ComponentConfig):
    """Knobs of :class:`~abl.trainables.tasks.timeseries.TimeSeriesTask` (``data.*``)."""

    task_metrics: ClassVar[tuple[str, ...]] = ("predict/mse_batch", "predict/mse_regressive")
    task_next_step_targets: ClassVar[bool] = True

    source: Literal["synthetic", "csv", "co2", "sunspots"] = Field(
        "synthetic",
        description="where the series comes from: generated, a CSV column, or a real series "
        "shipped with statsmodels (co2: weekly Mauna Loa CO2 1958-2001, 2284 values; sunspots: "
        "yearly 1700-2008)",
    )
    path: str = Field("", description="CSV file with a header row (source=csv)")
    column: str = Field("", description="CSV column to forecast; empty = the last numeric column")
    length: int = Field(2000, ge=1, description="length of the synthetic series")
    noise: float = Field(
        0.1, ge=0, description="synthetic noise std, relative to the main seasonal amplitude"
    )
    time_steps: int = Field(32, ge=1, description="input window length")
    val_fraction: float = Field(
        0.2, gt=0, lt=1, description="last fraction of the series used for validation"
    )
    rollout: int = Field(
        50, ge=1, description="steps of the autoregressive prediction (predict/mse_regressive)"
    )
    seed: int = data_seed()


class CharLMConfig(ComponentConfig):
    """Knobs of :class:`~abl.trainables.tasks.charlm.CharLMTask` (``data.*``)."""

    task_metrics: ClassVar[tuple[str, ...]] = ()
    task_next_step_targets: ClassVar[bool] = True

    path: str = Field(
        "", description="UTF-8 text file; empty = the built-in corpus (Python's pydoc topics)"
    )
    block_size: int = Field(64, ge=1, description="context length: characters per input window")
    val_fraction: float = Field(
        0.1, gt=0, lt=1, description="last fraction of the text used for validation"
    )
    epoch_batches: int = Field(
        200, ge=1, description="batches of random windows per training epoch"
    )
    val_batches: int = Field(
        20, ge=1, description="batches of fixed random windows per validation pass"
    )
    seed: int = data_seed()


class LinearRegressionConfig(ComponentConfig):
    """Knobs of :class:`~abl.trainables.tasks.linreg.LinearRegressionTask` (``data.*``);
    curricula count optimizer steps."""

    task_metrics: ClassVar[tuple[str, ...]] = ("val/mse_per_dim", "val/mse_last_point")
    task_next_step_targets: ClassVar[bool] = False

    n_dims: int = Field(10, ge=1, description="largest dimension d; tokens are n_dims + 1 wide")
    dims_start: int = Field(
        10, ge=1, description="dimension d of the first step (the logbook keeps d = 10)"
    )
    dims_end: int = Field(10, ge=1, description="final dimension d (validation uses it)")
    dims_inc: int = Field(1, description="change of d at every dims_interval steps")
    dims_interval: int = Field(20000, description="optimizer steps between changes of d")
    points_start: int = Field(11, ge=1, description="in-context points n of the first step")
    points_end: int = Field(41, ge=1, description="final number of points n (validation uses it)")
    points_inc: int = Field(2, description="change of n at every points_interval steps")
    points_interval: int = Field(1000, description="optimizer steps between changes of n")
    epoch_batches: int = Field(
        1000, ge=1, description="training batches per epoch, each drawn fresh"
    )
    val_batches: int = Field(
        8, ge=1, description="fixed validation batches at dims_end and points_end"
    )
    seed: int = data_seed()


class SymbolicConfig(ComponentConfig):
    """Knobs shared by the copy and addition tasks (``data.*``)."""

    task_metrics: ClassVar[tuple[str, ...]] = (
        "val/acc_token",
        "val/acc_seq",
        "curriculum/acc_seq",
        "curriculum/max_len",
    )
    task_next_step_targets: ClassVar[bool] = False

    base: int = Field(16, ge=2, description="number base: digit tokens are 0..base-1")
    curriculum: Literal["none", "uniform", "progressive"] = Field(
        "progressive",
        description="length curriculum: full length, uniform lengths, or a rising max length",
    )
    min_len: int = Field(1, ge=1, description="shortest sampled length (uniform, progressive)")
    len_start: int = Field(1, description="first max length of the progressive curriculum")
    len_inc: int = Field(
        1, ge=1, description="max-length increase after an epoch that passes threshold"
    )
    threshold: float = Field(
        0.9,
        gt=0,
        le=1,
        description="curriculum/acc_seq an epoch must reach to raise the max length",
    )
    train_samples: int = Field(32768, ge=1, description="samples drawn per training epoch")
    val_samples: int = Field(
        1024, ge=1, description="samples of the fixed validation set (and of each level set)"
    )
    seed: int = data_seed()


class CopyConfig(SymbolicConfig):
    """Knobs of :class:`~abl.trainables.tasks.symbolic.CopyTask` (``data.*``)."""

    variant: Literal["copy", "flip", "roll"] = Field(
        "copy", description="target: the string, reversed, or rotated right by roll_by"
    )
    seq_len: int = Field(20, ge=1, description="full string length (validation, curriculum end)")
    roll_by: int = Field(
        1, description="rotation of the roll variant (modulo each string's length)"
    )


class AdditionConfig(SymbolicConfig):
    """Knobs of :class:`~abl.trainables.tasks.symbolic.AdditionTask` (``data.*``); lengths
    count digits per operand."""

    max_value: int = Field(
        1000, ge=1, description="largest operand; its digit count in base is the full length"
    )
