"""A researcher's own training command as a trainable: ``trainable: {command: python train.py}``.

Each trial runs the command as a child process of its Ray trial actor, in the trial's own
working directory (``<run>/tune/<trial>/work``, the same across retries and resumes; as
Hydra's multirun does, so files a script writes are the trial's own), with the trial's config
passed the way the script reads it (``style``):

- ``hydra``: overrides, ``model.pe_type=rope train.lr=0.001`` (and ``hydra.run.dir=.``);
- ``flags``: ``--model.pe_type rope --train.lr 0.001``; ``flags=``: ``--train.lr=0.001``
  (a boolean is a switch: ``--causal`` when true, left out when false);
- ``json`` / ``yaml``: the config, nested at its dots, in ``abl-config.json`` / ``.yaml``,
  whose path ends the command line (so ``command: python train.py --config`` reads it).

Its metrics come from where the script already writes them (``metrics``): ``report`` (the
``from abl import report`` client, the default), ``{jsonl: FILE}``, ``{csv: FILE}``, or
``{stdout: REGEX}`` (named groups are metrics); ``names`` renames them to abl's. Every new row
is a report to Tune while the script runs, so ASHA can prune it: a stopped trial's process
gets SIGTERM, then SIGKILL after ``grace_s``. The environment carries ``OMP_NUM_THREADS``
(the trial's CPUs), ``CUDA_VISIBLE_DEVICES`` (Ray's GPUs), ``ABL_SEED``, ``ABL_TRIAL_DIR``,
``ABL_LAUNCH_DIR`` (where ``abl search`` ran: the command's own relative paths are taken from
there, and it heads ``PYTHONPATH``) and ``ABL_CHECKPOINT_DIR``: a script that saves there and
loads from there continues after a retry or ``--resume``. Its stdout and stderr are
``stdout.log`` and ``stderr.log`` in its working directory.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from abl.client import REPORT_FILE
from abl.errors import AblError, did_you_mean, one_of, validation_message
from abl.trainables.metrics import STEP_KEY

POLL_S = 0.1  # how often the trial looks for new metrics and for the process's exit
FIRST_POLL_S = 0.005  # ... at first, and after each new row (a short script ends soon)
STDERR_TAIL = 20  # lines of stderr in the error of a command that failed
CHECKED_CONFIGS = 200  # trial configs a Hydra app's compose checks (each takes milliseconds)
SOURCES = ("report", "jsonl", "csv", "stdout", "tensorboard")
EVENT_FILES = "events.out.tfevents.*"  # what TensorBoard writers (torch, Lightning) write
PYTHON_ENV = "ABL_PYTHON"  # the driver's interpreter, for a command that starts with python
REPORT_LOG = "abl-report.jsonl"  # in the work dir: what the abl.report client writes


class Command(BaseModel):
    """``trainable:`` of a space that runs the user's own command (see the module docs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: str = Field(min_length=1, description="the command line, e.g. 'python train.py'")
    style: Literal["hydra", "flags", "flags=", "json", "yaml"] = "flags"
    metrics: tuple[str, str] = ("report", "")  # (source, its file or regex)
    names: dict[str, str] = Field(default_factory=dict)  # the script's name -> abl's
    seed: str | None = "seed"  # the key the script reads its seed from; None: $ABL_SEED only
    timeout_s: float | None = Field(default=None, gt=0)  # per trial; None: no limit
    grace_s: float = Field(default=10.0, ge=0)  # from SIGTERM to SIGKILL
    config: str | None = None  # style hydra: the app's primary config file, to check overrides
    check_flags: bool = False  # styles flags/flags=: check flag names against the script's --help
    step: str | None = "step"  # the metric that numbers the script's rows; None: abl counts them

    @field_validator("metrics", mode="before")
    @classmethod
    def _source(cls, raw: Any) -> Any:
        if raw == "report":
            return ("report", "")
        shape = "must be report, {jsonl: FILE}, {csv: FILE}, {stdout: REGEX} or {tensorboard: DIR}"
        if not (isinstance(raw, dict) and len(raw) == 1):
            raise ValueError(shape)
        ((kind, arg),) = raw.items()
        if kind not in SOURCES[1:] or not isinstance(arg, str) or not arg:
            raise ValueError(shape)
        if kind == "stdout":
            try:
                groups = re.compile(arg).groupindex
            except re.error as exc:
                raise ValueError(f"needs a stdout regex that compiles ({exc})") from None
            if not groups:
                raise ValueError("needs a stdout regex that names its metrics: (?P<val_loss>\\S+)")
        return (kind, arg)

    @field_serializer("metrics")
    def _source_yaml(self, value: tuple[str, str]) -> Any:
        return "report" if value[0] == "report" else {value[0]: value[1]}

    def __str__(self) -> str:
        return self.command

    def argv(self, config: dict[str, Any], work: Path) -> list[str]:
        """The command line of a trial with ``config``, its working directory ``work``."""
        config = dict(config)
        if "seed" in config and self.seed != "seed":
            seed = config.pop("seed")
            if self.seed is not None:
                config[self.seed] = seed
        base = _from_launch_dir(_python(shlex.split(self.command)))
        if self.style == "hydra":
            return [
                *base,
                *(f"{k}={_hydra_value(v)}" for k, v in config.items()),
                "hydra.run.dir=.",
            ]
        if self.style in ("json", "yaml"):
            path = work / f"abl-config.{self.style}"
            nested = _nested(config)
            text = json.dumps(nested, indent=2) if self.style == "json" else yaml.safe_dump(nested)
            path.write_text(text, encoding="utf-8")
            return [*base, str(path)]
        args = []
        for key, value in config.items():
            if value is None or value is False:
                continue
            if value is True:
                args.append(f"--{key}")
            elif self.style == "flags=":
                args.append(f"--{key}={_text(value)}")
            elif isinstance(value, list):
                args += [f"--{key}", *map(_text, value)]
            else:
                args += [f"--{key}", _text(value)]
        return [*base, *args]


def parse_command(raw: dict[str, Any]) -> Command:
    """``trainable: {command: ...}`` of a space as a :class:`Command`, or one AblError line."""
    from pydantic import ValidationError

    try:
        return Command.model_validate(raw)
    except ValidationError as exc:
        typo_first = _TypoFirst(exc)  # an unknown key says more than the missing one it misspells
        raise AblError(
            validation_message(typo_first, Command, where="command trainable", prefix="trainable")
        ) from None


class _TypoFirst:
    """A ValidationError's errors with unknown keys first (what ``validation_message`` reads)."""

    def __init__(self, exc: Any) -> None:
        self._errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")

    def errors(self) -> list[Any]:
        return self._errors


class CommandTrainable:
    """The :class:`~abl.trainables.trainable.Trainable` of a :class:`Command`."""

    def __init__(self, spec: Command) -> None:
        self.spec = spec
        self.name = spec.command

    def resolve(self, given: dict[str, Any], where: str) -> dict[str, Any]:
        return dict(given)  # the script checks its own arguments

    def trial_config(self, config: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in config.items() if v is not None}

    def metrics(self) -> tuple[str, ...] | None:
        return None  # the first report tells

    def restart_lines(self, trials_dir: Path, trial_ids: Sequence[str]) -> list[str]:
        """For trials that run again (``--resume``): whether each one's script left a
        checkpoint in ``$ABL_CHECKPOINT_DIR`` to continue from, or starts over."""
        lines = []
        for trial_id in trial_ids:
            folder = trials_dir / trial_id / "checkpoint"
            if folder.is_dir() and any(folder.iterdir()):
                lines.append(
                    f"trial {trial_id} runs its script again; it left a checkpoint in {folder}"
                )
            else:
                lines.append(
                    f"trial {trial_id} starts over: its script saved nothing in $ABL_CHECKPOINT_DIR"
                )
        return lines

    def preflight(self, configs: Sequence[dict[str, Any]]) -> None:
        """The program exists, and so does the script a Python command names."""
        argv = _python(shlex.split(self.spec.command))
        if shutil.which(argv[0]) is None:
            raise AblError(f"command '{self.spec.command}': no program '{argv[0]}' on PATH")
        script = next((a for a in argv[1:] if not a.startswith("-")), None)
        if (
            self.spec.metrics[0] == "tensorboard"
            and importlib.util.find_spec("tensorboard") is None
        ):
            raise AblError(
                "metrics: {tensorboard: DIR} reads event files with the tensorboard package, "
                "which is not installed here (pip install tensorboard)"
            )
        python = Path(argv[0]).name.startswith("python")
        if python and script and script.endswith(".py") and not Path(script).is_file():
            raise AblError(
                f"command '{self.spec.command}': no file {script} in {Path.cwd()} "
                "(its relative paths are taken from where `abl search` runs)"
            )
        if self.spec.config is not None:
            self._check_hydra(configs)
        if self.spec.check_flags:
            self._check_flags(configs, argv)

    def _check_flags(self, configs: Sequence[dict[str, Any]], argv: list[str]) -> None:
        """Every flag a trial gets is one that the script's ``--help`` lists (argparse's)."""
        if self.spec.style not in ("flags", "flags="):
            raise AblError(
                f"trainable.check_flags reads a script's --help for styles flags and flags=; "
                f"got style {self.spec.style} (trainable.check_flags)"
            )
        try:
            shown = subprocess.run(
                [*_from_launch_dir(argv), "--help"], capture_output=True, text=True, timeout=120
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AblError(f"command '{self.spec.command} --help' did not run: {exc}") from None
        known = sorted(set(re.findall(r"(?<![\w-])(--[A-Za-z0-9][\w.-]*)", shown.stdout)))
        if shown.returncode != 0 or not known:
            raise AblError(
                f"command '{self.spec.command} --help' listed no flags (exit status "
                f"{shown.returncode}); leave trainable.check_flags out for this script"
            )
        for config in configs:
            for word in self.spec.argv(config, Path.cwd())[len(argv) :]:
                flag = word.split("=", 1)[0]
                if flag.startswith("--") and flag not in known:
                    raise AblError(
                        f"{flag} is not a flag of '{self.spec.command}' (its --help lists "
                        f"{one_of(known)}){did_you_mean(flag, known)} (trial config, {flag[2:]})"
                    )

    def _check_hydra(self, configs: Sequence[dict[str, Any]]) -> None:
        """Every override a trial gets, against the Hydra app's own config (Hydra's compose
        API): a key it lacks, or a value of another type than its default, is one error."""
        from hydra import compose, initialize_config_dir
        from hydra.errors import HydraException
        from omegaconf import OmegaConf

        path = Path(str(self.spec.config))
        if self.spec.style != "hydra" or not path.is_file():
            raise AblError(
                f"trainable.config names a Hydra app's config file (style: hydra); got "
                f"{self.spec.config!r} with style {self.spec.style} (trainable.config)"
            )
        seen: dict[str, Any] = {}
        for config in configs:
            args = self.spec.argv(config, Path.cwd())
            seen.update(a.split("=", 1) for a in args if "=" in a and not a.startswith("hydra."))
        with initialize_config_dir(config_dir=str(path.parent.resolve()), version_base=None):
            try:
                app = _flat(OmegaConf.to_container(compose(path.stem), resolve=False), sep=".")
                seed = self.spec.seed
                if seed is not None and seed in seen and seed not in app:
                    seeds = [k for k in app if k.rsplit(".", 1)[-1] == "seed"]
                    raise AblError(
                        f"the trials' seeds go to {seed}, which the Hydra app's config ({path}) "
                        f"lacks; set trainable.seed to the key it reads its seed from"
                        f"{f' ({seeds[0]}?)' if seeds else ''}, or to null for $ABL_SEED only "
                        "(trainable.seed)"
                    )
                for key, value in seen.items():
                    _check_override(key, value, app, path)
                for config in configs[:CHECKED_CONFIGS]:  # group choices (model=...) compose
                    args = self.spec.argv(config, Path.cwd())[len(shlex.split(self.spec.command)) :]
                    compose(path.stem, overrides=[a for a in args if not a.startswith("hydra.")])
            except HydraException as exc:
                said = " ".join(str(exc).split()).split(" Config search path")[0]
                raise AblError(f"the Hydra app's config ({path}) refuses a trial: {said}") from None

    def run(self, config: dict[str, Any], trial: Any) -> None:
        """Run the command for one trial, reporting each new row of its metrics to Tune
        (``trial``: a :class:`~abl.trainables.trainable.TrialContext`)."""
        trial_dir = trial.dir
        import ray
        from ray import tune

        ctx = tune.get_context()
        work = trial_dir / "work"
        work.mkdir(parents=True, exist_ok=True)
        cpus = max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
        launch = Path.cwd()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(launch), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
            "ABL_LAUNCH_DIR": str(launch),
            "OMP_NUM_THREADS": str(cpus),
            "MKL_NUM_THREADS": str(cpus),
            "CUDA_VISIBLE_DEVICES": ",".join(str(g) for g in ray.get_gpu_ids()),
            "ABL_SEED": str(config.get("seed", 0)),
            "ABL_TRIAL_ID": ctx.get_trial_id(),
            "ABL_TRIAL_DIR": str(work),
            "ABL_CHECKPOINT_DIR": str(trial_dir / "checkpoint"),
            REPORT_FILE: str(work / REPORT_LOG),
            "PYTHONUNBUFFERED": "1",
        }
        source = _source(self.spec, work)
        argv = self.spec.argv(config, work)
        started = time.monotonic()
        with open(work / "stdout.log", "ab") as out, open(work / "stderr.log", "ab") as err:
            proc = subprocess.Popen(
                argv,
                cwd=work,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # its own process group: a stop ends its children too
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        try:
            reports, seen = self._follow(proc, source, tune.report, started, trial.metric)
        finally:
            _stop(proc, self.spec.grace_s)
        if proc.returncode != 0:
            raise command_failed(self.spec, proc.returncode, work)
        if reports == 0:
            had = f"its rows had {one_of(sorted(seen))}" if seen else "it wrote no row"
            raise AblError(
                f"command '{self.spec.command}' finished without reporting {trial.metric} "
                f"(the sweep's metric) in {source.describe()}: {had}; its output is in {work}"
            )

    def _follow(
        self, proc: subprocess.Popen[bytes], source: Any, report: Any, started: float, metric: str
    ) -> tuple[int, set[str]]:
        """Report each new row that has the sweep's ``metric`` until the script exits; returns
        the reports made and every key seen. Ray Tune wants the metric in every report, so
        rows without it (a TensorBoard step of training scalars only, say) are held, their
        latest values going into the next row that has it."""
        reports, wait = 0, FIRST_POLL_S
        held: dict[str, float] = {}
        seen: set[str] = set()
        timeout = self.spec.timeout_s
        while True:
            ended = proc.poll() is not None
            for row in source.rows(final=ended):
                if self.spec.step in row:  # the script's own step: a continued run gives it again
                    own = (
                        row.pop(self.spec.step) if self.spec.step == "step" else row[self.spec.step]
                    )
                    row = {**row, STEP_KEY: own}  # ("step" itself would clash with abl's step)
                seen.update(row)
                if metric not in row:
                    held.update(row)
                    continue
                report({**held, **row})  # raises SystemExit once Tune stopped the trial
                held, reports, wait = {}, reports + 1, FIRST_POLL_S
            if ended:
                return reports, seen
            if timeout is not None and time.monotonic() - started > timeout:
                raise TimeoutError(
                    f"command '{self.spec.command}' ran past timeout_s={timeout:g} and was stopped"
                )
            time.sleep(wait)
            wait = min(POLL_S, wait * 2)  # soon after news, then every POLL_S


def _check_override(key: str, text: str, app: dict[str, Any], path: Path) -> None:
    """``key=text`` against the app's flat config ``app`` (a group choice passes: compose checks it)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if key.startswith("+") or key.startswith("~"):
        return
    if key not in app:
        if any(k.startswith(f"{key}.") for k in app) or "." not in key:
            return  # a group or a whole section: compose says whether it exists
        raise AblError(
            f"{key} is not a key of the Hydra app's config ({path}; a new key is +{key})"
            f"{did_you_mean(key, list(app))} (trial config, {key})"
        )
    (override,) = OverridesParser.create().parse_overrides([f"{key}={text}"])
    value, default = override.value(), app[key]
    if default is None or value is None or isinstance(default, str):
        return  # untyped, or text (which any value may be)
    want = float if isinstance(default, float) else type(default)
    ok = isinstance(value, want) and not (isinstance(value, bool) and want is not bool)
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise AblError(
            f"{key} is {want.__name__} in the Hydra app's config ({path}); got {value!r} "
            f"(trial config, {key})"
        )


class CommandFailed(RuntimeError):
    """The command exited non-zero (see :func:`command_failed`)."""


def command_failed(spec: Command, code: int, work: Path) -> CommandFailed:
    """The error of a command that exited with ``code``, the last lines of its stderr after
    it (one argument, so that Ray can pickle it back to the driver)."""
    tail = _tail(work / "stderr.log", STDERR_TAIL)
    how = f"signal {-code}" if code < 0 else f"status {code}"
    last = tail.splitlines()[-1] if tail else ""
    if last:  # the first line is what the progress line and the report show
        how += f" ({last.strip()[:200]})"
    # indented: Ray rewrites a line that starts with "Traceback " in an error it passes on
    body = "".join(f"\n  {line}" for line in tail.splitlines())
    ended = f"; its stderr ended:{body}" if body else " (its stderr is empty)"
    return CommandFailed(f"command '{spec.command}' exited with {how}{ended}")


class _Lines:
    """The complete lines added to a text file since the last call (none while it is absent)."""

    def __init__(self, path: Path) -> None:
        self.path, self.pos, self.rest = path, 0, b""
        self.restarted = False  # the file was written anew since it was last read

    def skip(self) -> list[str]:
        """Skip the complete lines the file holds now (an earlier run's); returns them."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        self.pos = data.rfind(b"\n") + 1
        return data[: self.pos].decode("utf-8", "replace").splitlines()

    def rewind(self) -> None:
        """Read the file from its top again."""
        self.pos, self.rest = 0, b""

    def new(self, final: bool = False) -> list[str]:
        """``final``: the writer has exited, so a last line without its newline counts too."""
        try:
            with open(self.path, "rb") as f:
                if os.fstat(f.fileno()).st_size < self.pos:  # written anew: read from the top
                    self.pos, self.rest, self.restarted = 0, b"", True
                f.seek(self.pos)
                data = f.read()
        except FileNotFoundError:
            return []
        self.pos += len(data)
        *lines, self.rest = (self.rest + data).split(b"\n")
        if final and self.rest:
            lines, self.rest = [*lines, self.rest], b""
        return [line.decode("utf-8", "replace").rstrip("\r") for line in lines]


class _Source:
    """The rows of one metrics source, renamed to abl's names: one dict of floats a row."""

    def __init__(self, spec: Command, path: Path) -> None:
        self.kind, self.arg = spec.metrics
        self.names, self.path, self.lines = spec.names, path, _Lines(path)
        self.header: list[str] | None = None
        self.pattern = re.compile(self.arg) if self.kind == "stdout" else None
        self.events = _Events(path) if self.kind == "tensorboard" else None
        if self.events is None:
            # What an earlier run of the trial wrote (before a retry or --resume) is read again
            # if each row carries the script's own step (abl keeps a step once), else skipped.
            before = [row for row in map(self._parse, self.lines.skip()) if row]
            if before and spec.step is not None and all(spec.step in row for row in before):
                self.lines.rewind()
                self.header = None

    def describe(self) -> str:
        if self.kind == "stdout":
            return f"its stdout matched against {self.arg!r}"
        return f"{self.path} ({'abl.report' if self.kind == 'report' else self.kind})"

    def rows(self, final: bool = False) -> Iterator[dict[str, float]]:
        """The rows written since the last call (``final``: the script has exited)."""
        if self.lines.restarted:
            self.lines.restarted, self.header = False, None
        parsed = (
            self.events.new(final)
            if self.events is not None
            else map(self._parse, self.lines.new(final))
        )
        for row in parsed:
            if row:
                yield {self.names.get(k, k): v for k, v in row.items()}

    def _parse(self, line: str) -> dict[str, float]:
        if self.pattern is not None:
            match = self.pattern.search(line)
            return _numbers(match.groupdict()) if match else {}
        if self.kind == "csv":
            (cells,) = csv.reader(io.StringIO(line)) if line else ([],)
            if self.header is None:
                self.header = cells
                return {}
            return _numbers(dict(zip(self.header, cells, strict=False)))
        try:
            return _numbers(_flat(json.loads(line)))
        except ValueError:  # not a JSON line: the script's own, skipped
            return {}


class _Events:
    """TensorBoard scalars under a folder (its event files at any depth), one row per step.

    Read with TensorBoard's own reader, which takes up each file where it left off; files there
    before the script started (a retry's predecessor's) are left out: every writer starts a
    file of its own. A step is a row once a later one appears (its writer has moved on) or the
    script has exited.
    """

    def __init__(self, root: Path) -> None:
        self.root, self.done = root, -1  # the last step made a row
        self.readers: dict[Path, Any] = dict.fromkeys(root.rglob(EVENT_FILES))  # None: skipped

    def new(self, final: bool) -> list[dict[str, float]]:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        for path in sorted(set(self.root.rglob(EVENT_FILES)) - set(self.readers)):
            self.readers[path] = EventAccumulator(str(path), size_guidance={"scalars": 0})
        steps: dict[int, dict[str, float]] = {}
        for reader in filter(None, self.readers.values()):
            reader.Reload()
            for tag in reader.Tags()["scalars"]:
                for event in reader.Scalars(tag):
                    if event.step > self.done:
                        steps.setdefault(event.step, {})[tag] = float(event.value)
        ready = sorted(steps) if final else sorted(steps)[:-1]
        if ready:
            self.done = ready[-1]
        return [{"step": float(s), **steps[s]} for s in ready]


def _source(spec: Command, work: Path) -> _Source:
    kind, arg = spec.metrics
    path = {"report": REPORT_LOG, "stdout": "stdout.log"}.get(kind, arg)
    return _Source(spec, work / path)  # an absolute path stays as it is


def _python(argv: list[str]) -> list[str]:
    """``python``/``python3`` at the head of a command is the Python that runs abl (its
    environment has abl, for ``from abl import report``), as the user's shell would have it.

    ``$ABL_PYTHON``, which the driver sets before Ray starts: a Ray worker's own
    ``sys.executable`` can be the interpreter the virtual environment was made from.
    """
    if not argv or argv[0] not in ("python", "python3"):
        return argv
    return [os.environ.get(PYTHON_ENV) or sys.executable, *argv[1:]]


def _from_launch_dir(argv: list[str]) -> list[str]:
    """The command's words that name files where ``abl search`` ran, made absolute: the
    command runs in the trial's folder."""
    # abspath, not resolve: a virtual environment's python is a symlink that must stay one
    return [os.path.abspath(a) if not a.startswith("-") and Path(a).exists() else a for a in argv]


def _numbers(row: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in row.items():
        if isinstance(value, bool) or value is None:
            continue
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out


def _flat(obj: Any, prefix: str = "", sep: str = "/") -> dict[str, Any]:
    if not isinstance(obj, dict):
        return {}
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}{sep}", sep))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _nested(config: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _text(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    return str(value)


_HYDRA_PLAIN = re.compile(r"^[\w./:+-]+$")


def _hydra_value(value: Any) -> str:
    """A value in Hydra's override grammar: true/false, null, numbers, [lists], quoted strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_hydra_value(v) for v in value) + "]"
    if isinstance(value, (int, float)):
        return _text(value)
    text = str(value)
    if _HYDRA_PLAIN.match(text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _tail(path: Path, n: int) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the trial's thread goes (the actor killed).

    Linux's PR_SET_PDEATHSIG, through ctypes: no library sets it for a Popen child.
    """
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG


def _stop(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM to the command's process group, SIGKILL after ``grace_s`` if it is still up."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
