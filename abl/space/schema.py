"""The space file: what to sweep, how to search it, and where trials run.

    abl search spaces/att_timeseries.yaml model.pe_type=rope,sinpe train.epochs=3

``load_space`` reads the YAML, applies Hydra-style overrides, validates every section and every
trial parameter against the trainable's schema, and returns a :class:`Space`. Every mistake is
an :class:`AblError` naming the file, the key, what is allowed and what was given.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from abl.errors import AblError, brief, did_you_mean, one_of, validation_message
from abl.space import yamlfile
from abl.trainables.command import Command, parse_command

Scalar = bool | int | float | str | None
DIST_KINDS = ("uniform", "loguniform", "int", "choice")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Dist(_Strict):
    """A distribution of ``sample:``: exactly one of ``uniform``, ``loguniform``, ``int``, ``choice``."""

    kind: Literal["uniform", "loguniform", "int", "choice"]
    args: tuple[Scalar, ...]

    @classmethod
    def parse(cls, raw: Any, where: str) -> Dist:
        if not isinstance(raw, dict) or len(raw) != 1:
            raise AblError(
                f"a distribution is one of {{uniform|loguniform|int: [low, high]}} or "
                f"{{choice: [values]}}; got {brief(raw)} ({where})"
            )
        ((kind, args),) = raw.items()
        if kind not in DIST_KINDS:
            raise AblError(
                f"distribution must be one of {one_of(DIST_KINDS)}; got '{kind}'"
                f"{did_you_mean(str(kind), DIST_KINDS)} ({where})"
            )
        if not isinstance(args, list) or not args:
            raise AblError(f"{kind} takes a list; got {brief(args)} ({where})")
        if kind == "choice":
            return cls(kind=kind, args=tuple(args))
        if len(args) != 2 or not all(
            isinstance(a, (int, float)) and not isinstance(a, bool) for a in args
        ):
            raise AblError(f"{kind} takes [low, high] numbers; got {brief(args)} ({where})")
        low, high = args
        if not low < high:
            raise AblError(f"{kind} needs low < high; got {brief(args)} ({where})")
        if kind == "loguniform" and low <= 0:
            raise AblError(f"loguniform needs low > 0; got {brief(args)} ({where})")
        if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
            raise AblError(f"int takes whole-number bounds; got {brief(args)} ({where})")
        return cls(kind=kind, args=(low, high))

    def values(self) -> tuple[Scalar, ...]:
        """Values to check against a parameter's type: the choices, or the bounds."""
        if self.kind == "int":
            return tuple(int(a) for a in self.args)  # type: ignore[arg-type]
        return self.args

    def to_yaml(self) -> dict[str, list[Scalar]]:
        return {self.kind: list(self.args)}


class When(_Strict):
    """A conditional block: its parameters apply to trials whose config matches ``if``."""

    if_: dict[str, Scalar | list[Scalar]] = Field(alias="if")
    fixed: dict[str, Scalar] = {}
    grid: dict[str, list[Scalar]] = {}
    sample: dict[str, Dist] = {}

    def matches(self, config: dict[str, Any]) -> bool:
        for key, want in self.if_.items():
            have = config.get(key)
            if (isinstance(want, list) and have not in want) or (
                not isinstance(want, list) and have != want
            ):
                return False
        return True


def _parse_dists(raw: Any, where: str) -> Any:
    if isinstance(raw, dict):
        return {
            k: v if isinstance(v, Dist) else Dist.parse(v, f"{where}.{k}") for k, v in raw.items()
        }
    return raw


class TuneSettings(_Strict):
    """``tune:``: nuisance parameters tuned separately within every arm (grid cell)."""

    params: Annotated[dict[str, Dist], Field(min_length=1)]  # distributions, as in `sample:`
    trials: Annotated[int, Field(ge=1)] = 8  # tuning trials per arm
    algorithm: Literal["random", "tpe"] = "tpe"  # one Optuna sampler per arm
    seed: int = 0  # seeds every arm's sampler (arm i gets seed + i)

    @field_validator("params", mode="before")
    @classmethod
    def _dists(cls, raw: Any) -> Any:
        return _parse_dists(raw, "tune.params")


class Phase(str, Enum):
    """Which part of a tuned ablation a trial belongs to (column ``tune.phase``)."""

    TUNE = "tune"  # searching the arm's nuisance parameters
    CONFIRM = "confirm"  # the arm's best nuisance setting again, with a new seed


# Keys a tuned ablation adds to every trial config (and so to trials.parquet); the trainable
# never sees them.
PHASE_KEY = "tune.phase"
ARM_KEY = "tune.arm"  # the arm's index, in grid order
MARK_KEYS = (PHASE_KEY, ARM_KEY)


class AdaptiveRepeats(_Strict):
    """``repeats: {min, max, alpha, margin}`` (or ``confirm:`` of a tuned ablation): every
    configuration runs ``min`` seeds, then, round by round, one more seed goes only to the
    configurations whose comparisons are still open, up to ``max``
    (:mod:`abl.results.sequential` decides, at ``alpha`` with the looks accounted for)."""

    min: Annotated[int, Field(ge=2)] = 2
    max: Annotated[int, Field(ge=2)]
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.05
    margin: Annotated[float, Field(gt=0)] | None = None  # a tie within it is a decision too
    # A comparison whose conditional power of a decision by max seeds falls below this stops
    # as not distinguishable (non-binding futility); null: only decisions stop seeds.
    futility: Annotated[float, Field(ge=0, lt=1)] | None = 0.1

    @field_validator("max")
    @classmethod
    def _at_least_min(cls, value: int, info: ValidationInfo) -> int:
        least = info.data.get("min", 2)
        if value < least:
            raise ValueError(f"must be at least min ({least})")
        return value


Seeds = Annotated[int, Field(ge=1)] | AdaptiveRepeats


class SearchSettings(_Strict):
    algorithm: Literal["grid", "random", "tpe"] = "grid"
    samples: Annotated[int, Field(ge=1)] = 1  # random: draws of `sample:`; tpe: trials per repeat
    concurrency: Annotated[int, Field(ge=1)] | None = None  # None: as many as resources allow
    seed: int = 0  # seeds the random draws and the TPE sampler


class AshaSettings(_Strict):
    grace_period: Annotated[int, Field(ge=1)] = 1
    reduction_factor: Annotated[float, Field(gt=1)] = 3
    max_t: Annotated[int, Field(ge=1)] | None = None  # None: train.epochs


class SchedulerSettings(_Strict):
    asha: AshaSettings | None = None


class Resources(_Strict):
    cpu: Annotated[float, Field(gt=0)] = 1
    gpu: Annotated[float, Field(ge=0)] = 0


class Space(_Strict):
    """A validated space file (overrides applied). ``source`` is where it came from."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    trainable: str | Command  # a registered name, pkg.mod:fn, or {command: ...}
    description: str = ""
    metric: str = "val/loss"
    mode: Literal["min", "max"] = "min"
    report: list[str] = []  # more metrics to report on, each beside the ranking metric's report
    fixed: dict[str, Scalar] = {}
    grid: dict[str, Annotated[list[Scalar], Field(min_length=1)]] = {}
    sample: dict[str, Dist] = {}
    when: list[When] = []
    tune: TuneSettings | None = None
    # tuned ablations: seeds re-running each arm's best (or adaptive: {min, max, alpha, margin})
    confirm: Annotated[int, Field(ge=0)] | AdaptiveRepeats = 0
    repeats: Seeds = 1  # seeds per configuration (or adaptive: {min, max, alpha, margin})
    search: SearchSettings = SearchSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    resources: Resources = Resources()
    max_failures: Annotated[int, Field(ge=0)] = 0
    # trials sharing an architecture train fused, up to this many in one Ray trial (abl.search.packs)
    pack: Annotated[int, Field(ge=1)] = 1
    plugins: list[str] = []  # the user's modules to import first (their @MODELS.register runs)
    source: str = "<space>"
    # The command-line overrides load_space applied, for errors found after it (the models
    # are built while Ray starts) to name the override as its own do.
    _overrides: tuple[str, ...] = PrivateAttr(default=())

    @field_validator("trainable", mode="before")
    @classmethod
    def _command(cls, raw: Any) -> Any:
        return parse_command(raw) if isinstance(raw, dict) else raw

    @field_validator("sample", mode="before")
    @classmethod
    def _dists(cls, raw: Any) -> Any:
        return _parse_dists(raw, "sample")

    @field_validator("scheduler", mode="before")
    @classmethod
    def _scheduler(cls, raw: Any) -> Any:
        return {} if raw in (None, "none", "fifo") else ({"asha": {}} if raw == "asha" else raw)

    def to_yaml(self) -> str:
        """The resolved space as YAML (what ``space.yaml`` in the run directory holds)."""
        data = self.model_dump(
            mode="json", by_alias=True, exclude={"source"}, exclude_defaults=True
        )
        data = {"name": self.name, "trainable": self.trainable, **data}
        if self.sample:
            data["sample"] = {k: d.to_yaml() for k, d in self.sample.items()}
        if self.tune is not None:
            data["tune"]["params"] = {k: d.to_yaml() for k, d in self.tune.params.items()}
        for block, raw in zip(self.when, data.get("when", []), strict=False):
            if block.sample:
                raw["sample"] = {k: d.to_yaml() for k, d in block.sample.items()}
        return yamlfile.dumps(data)

    @property
    def seeds(self) -> int:
        """Seeds per configuration: ``repeats``, or an adaptive ``repeats``' maximum."""
        return self.repeats if isinstance(self.repeats, int) else self.repeats.max

    @property
    def confirm_seeds(self) -> int:
        """Confirmation seeds per arm of a tuned ablation: ``confirm`` or its maximum."""
        return self.confirm if isinstance(self.confirm, int) else self.confirm.max

    @property
    def adaptive(self) -> AdaptiveRepeats | None:
        """The adaptive seed plan of ``repeats`` (or of a tuned ablation's ``confirm``)."""
        for value in (self.repeats, self.confirm):
            if isinstance(value, AdaptiveRepeats):
                return value
        return None

    def sweep_keys(self) -> list[str]:
        """Trial parameters that vary across trials, in file order."""
        keys = [*self.grid, *self.sample]
        for block in self.when:
            keys += [k for k in (*block.grid, *block.sample) if k not in keys]
        if self.tune is not None:
            keys += list(self.tune.params)
        if self.seeds > 1 or self.confirm_seeds > 0:
            keys.append("seed")
        return list(dict.fromkeys(keys))


def parse_space(raw: Any, *, source: str) -> Space:
    """Validate a parsed YAML mapping as a Space; errors name ``source`` and the key."""
    if not isinstance(raw, dict):
        raise AblError(
            f"a space file must be a mapping of keys to values; got {type(raw).__name__} ({source})"
        )
    when = raw.get("when") or []
    for block in when if isinstance(when, list) else []:  # not a list: pydantic says so below
        if isinstance(block, dict) and isinstance(block.get("sample"), dict):
            block["sample"] = {
                k: Dist.parse(v, f"when.sample.{k}") for k, v in block["sample"].items()
            }
    raw = {**raw, **_seed_settings(raw, source)}
    try:
        space = Space.model_validate({**raw, "source": source})
    except ValidationError as exc:
        raise AblError(_first_error(exc, source)) from None
    except AblError as exc:
        raise AblError(f"{exc} ({source})".replace(") (", ", ", 1)) from None
    _check_search(space)
    _check_tune(space)
    _check_pack(space)
    return space


def _seed_settings(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """``repeats`` and ``confirm``: a whole number, or an adaptive plan validated here so that
    an error names its own key (``repeats.max``), not a branch of the union."""
    out: dict[str, Any] = {}
    for key, least in (("repeats", 1), ("confirm", 0)):
        if key not in raw:
            continue
        value = raw[key]
        if isinstance(value, dict):
            try:
                out[key] = AdaptiveRepeats.model_validate(value)
            except ValidationError as exc:
                message = validation_message(exc, AdaptiveRepeats, where=source, prefix=key)
                raise AblError(message) from None
        elif isinstance(value, bool) or not isinstance(value, int) or value < least:
            rule = f">= {least}" if isinstance(value, int) else "a whole number"
            raise AblError(
                f"{key} must be {rule} (or adaptive seeds {{min: 2, max: 10, alpha: 0.05, "
                f"margin: ...}}); got {brief(value)} ({source}, {key})"
            )
    return out


def _check_search(space: Space) -> None:
    """Settings that the chosen algorithm would silently ignore are refused."""
    search = space.search
    if search.algorithm == "tpe" and isinstance(space.repeats, AdaptiveRepeats):
        raise AblError(
            "adaptive repeats ({min, max}) compare a fixed set of configurations; TPE proposes "
            "new ones as it goes, so repeats must be a number with algorithm tpe; got "
            f"repeats: {space.repeats.model_dump(exclude_none=True)} ({space.source}, repeats)"
        )
    if search.algorithm == "grid" and "samples" in search.model_fields_set:
        raise AblError(
            f"search.samples sets the draws of random and tpe; a grid runs every cell, so "
            f"samples must be left out with algorithm grid; got samples: {search.samples} "
            f"({space.source}, search.samples)"
        )


def arm_keys(space: Space) -> list[str]:
    """The scientific parameters of a tuned ablation: what tells its arms apart."""
    keys = list(space.grid)
    for block in space.when:
        keys += [k for k in block.grid if k not in keys]
    return keys


def _check_pack(space: Space) -> None:
    """What ``pack:`` combines with (for now: a grid's or random search's configurations, with
    fixed or adaptive repeats, ASHA or not)."""
    if space.pack == 1:
        return
    refused = [
        (space.tune is not None, "tune", "a tuned ablation's searcher"),
        (space.search.algorithm == "tpe", "search.algorithm", "TPE's proposals"),
    ]
    for bad, key, what in refused:
        if bad:
            raise AblError(
                f"pack: fuses a grid's or random search's trials, known before the sweep; {what} "
                f"cannot drive packed trials yet, so pack must be 1 with it; got pack: "
                f"{space.pack} ({space.source}, {key})"
            )


def _check_tune(space: Space) -> None:
    """What ``tune:`` and ``confirm:`` combine with, each refusal a one-line rule."""
    src = space.source
    if space.tune is None:
        if space.confirm:
            raise AblError(
                f"confirm: re-runs each arm's tuned best, so it needs a tune: block; "
                f"got confirm: {space.confirm} without one ({src}, confirm)"
            )
        return
    rules = [
        (
            space.search.algorithm != "grid",
            "search.algorithm",
            "tune: searches within every arm itself (tune.algorithm random or tpe); "
            f"search.algorithm must stay grid; got {space.search.algorithm}",
        ),
        (
            bool(space.sample) or any(b.sample for b in space.when),
            "sample",
            "tune: takes its distributions in tune.params; sample: must be empty with it",
        ),
        (
            space.seeds > 1,
            "repeats",
            "tune: tunes on one seed and confirm: N re-runs each arm's best with N new seeds; "
            f"repeats must be 1 with tune:; got {space.repeats}",
        ),
        (
            "seed" in space.tune.params or "seed" in arm_keys(space),
            "tune.params",
            "seeds are set by a tuned ablation (tuning on one, confirm: on new ones); "
            "remove seed from grid and tune.params",
        ),
    ]
    for broken, key, rule in rules:
        if broken:
            raise AblError(f"{rule} ({src}, {key})")
    fixed = {*space.fixed, *arm_keys(space)} | {k for b in space.when for k in b.fixed}
    for key in space.tune.params:
        if key in fixed or key in MARK_KEYS:
            raise AblError(
                f"a tuned parameter must not also be fixed or a grid axis; "
                f"got '{key}' in both ({src}, tune.params.{key})"
            )


def _first_error(exc: ValidationError, source: str) -> str:
    return validation_message(exc, Space, where=source, hidden=("source",))


def builtin_spaces_dir() -> Path:
    """``spaces/`` of a source checkout, or the copy shipped inside the wheel."""
    here = Path(__file__).resolve().parent.parent
    checkout = here.parent / "spaces"
    return checkout if checkout.is_dir() else here / "_spaces"


def find_space_file(name_or_path: str) -> Path:
    """A path as given, or the built-in space of that name (``quickstart`` -> spaces/quickstart.yaml)."""
    path = Path(name_or_path)
    if path.exists() or path.suffix in (".yaml", ".yml") or "/" in name_or_path:
        return path
    builtin = builtin_spaces_dir() / f"{name_or_path}.yaml"
    if builtin.exists():
        return builtin
    names = sorted(p.stem for p in builtin_spaces_dir().glob("*.yaml"))
    raise AblError(
        f"space must be a YAML file or a built-in space ({one_of(names)}); "
        f"got '{name_or_path}'{did_you_mean(name_or_path, names)}"
    )
