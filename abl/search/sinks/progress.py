"""The progress sink: where the sweep stands, in the terminal.

On a TTY one live status line is redrawn every ``refresh_s`` seconds, with the epoch each
running trial has reached::

    7/12 done · 2 running · 3 pending · best val/loss=0.0123 (trial 3f2a1_00004) · 1m02s · ETA 40s · 3f2a1_00007 epoch 3/8, 3f2a1_00008 epoch 1/8

Elsewhere (CI logs, ``nohup``, a pipe) the same line is printed each time a trial ends, and
while trials run at most every ``pipe_every_s`` seconds. A trial that errors, diverges or fails
and is retried always gets a line of its own with its id and error (Tune's own tracebacks are
shown with ``-v``).

"best" ranks trials as the report and ``abl top`` do: completed trials by the *last* reported
value of the metric (``trials.parquet``'s metric column), never by a trial's best epoch, and
never a pruned, diverged or still running trial's value.
"""

from __future__ import annotations

import math
import time

from rich.console import Console
from rich.live import Live
from rich.text import Text

from abl.results.store import TrialStatus
from abl.search.sinks.base import Sink, SweepInfo, TrialRecord

_BAD = (TrialStatus.ERRORED, TrialStatus.DIVERGED)


def duration(seconds: float) -> str:
    """``45s``, ``3m05s``, ``2h07m``."""
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class ProgressSink(Sink):
    """Show done/running/pending, the best trial so far, elapsed time and an ETA.

    >>> ProgressSink(console=Console(stderr=True), refresh_s=0.5)  # doctest: +SKIP
    """

    _transient = ("_console", "_live")

    def __init__(
        self, *, console: Console | None = None, refresh_s: float = 1.0, pipe_every_s: float = 10.0
    ) -> None:
        self._console = console  # None: a Console on stdout, made on open
        self.refresh_s = refresh_s
        self.pipe_every_s = pipe_every_s  # without a terminal: a line while trials run, this often
        self._printed_at = 0.0
        self._epoch: dict[str, tuple[int, int | None]] = {}  # running trial -> (epoch, of total)
        self._live: Live | None = None
        self._sweep: SweepInfo | None = None
        self._t0 = time.time()
        self._running: set[str] = set()
        self._done = 0  # trials ended in this session
        self._before = 0  # trials ended before a resume
        self._wall_total = 0.0
        self._most_running = 1  # the concurrency seen so far, for the ETA
        self._best: tuple[float, str] | None = None  # (last value, trial id), completed only

    def open(self, sweep: SweepInfo) -> None:
        """Start the clock, and the live line on a terminal."""
        self._sweep, self._t0 = sweep, time.time()
        self._printed_at = self._t0
        self._before = sweep.ended_before
        self._best = sweep.best_before  # a resumed sweep's best so far
        if self._console is None:
            self._console = Console()
        if self._console.is_terminal and self._live is None:
            self._live = Live(
                get_renderable=self.status,
                console=self._console,
                refresh_per_second=1.0 / max(self.refresh_s, 0.05),
            )
            self._live.start()

    def trial_started(self, rec: TrialRecord) -> None:
        """Count the trial as running."""
        self._running.add(rec.trial_id)
        self._most_running = max(self._most_running, len(self._running))

    def trial_result(
        self, rec: TrialRecord, step: int, metrics: dict[str, float], time: float
    ) -> None:
        """Note the trial's epoch (it is ranked once it has completed, see the module doc);
        without a terminal, print the status line if none was printed for ``pipe_every_s``."""
        epochs = rec.config.get("train.epochs")
        self._epoch[rec.trial_id] = (step, epochs if isinstance(epochs, int) else None)
        if self._live is None and _now() - self._printed_at >= self.pipe_every_s:
            self._print(self.status().plain)

    def trial_retried(self, rec: TrialRecord, error: str) -> None:
        """Print the failure's summary line: the trial goes on from its last checkpoint."""
        summary = (error.strip().splitlines() or ["no error text"])[0]
        self._print(f"trial {rec.trial_id} failed, retrying from its last checkpoint: {summary}")

    def trial_ended(self, rec: TrialRecord) -> None:
        """Count the trial as done; print a line if it failed or if there is no live line."""
        self._running.discard(rec.trial_id)
        self._epoch.pop(rec.trial_id, None)
        self._done += 1
        self._wall_total += rec.wall_s or 0.0
        self._consider(rec)
        error = (rec.error or "").strip().splitlines()
        line = f"trial {rec.trial_id} {rec.status.value}" + (f": {error[0]}" if error else "")
        if self._live is None:
            self._print(f"{line} | {self.status().plain}")
        elif rec.status in _BAD:
            self._print(line)

    def flush(self) -> None:
        """Redraw the live line now."""
        if self._live is not None:
            self._live.refresh()

    def close(self) -> None:
        """Stop the live line, leaving its last state on screen."""
        if self._live is not None:
            self._live.stop()
            self._live = None

    def status(self) -> Text:
        """The one-line status (called from the live display's refresh thread)."""
        total = self._sweep.total_trials if self._sweep else None
        running, done = len(self._running), self._before + self._done
        at_most = self._sweep is not None and self._sweep.adaptive
        parts = [f"{done}/{total} done" if total else f"{done} done", f"{running} running"]
        if at_most:  # adaptive seeds: the total is an upper bound, and so is an ETA
            parts[0], total = f"{done} done (at most {total})", None
        if total:
            parts.append(f"{max(total - done - running, 0)} pending")
        if self._best is not None and self._sweep is not None:
            value, trial_id = self._best
            parts.append(f"best {self._sweep.metric}={value:.4g} (trial {trial_id})")
        parts.append(duration(time.time() - self._t0))
        if total and self._done:
            remaining = max(total - done, 0)
            eta = self._wall_total / self._done * remaining / self._most_running
            parts.append(f"ETA {duration(eta)}")
        at = [
            f"{t} epoch {e}" + (f"/{n}" if n else "")
            for t, (e, n) in sorted(self._epoch.items())
            if t in self._running
        ]
        if at:
            parts.append(", ".join(at[:3]) + (f" (+{len(at) - 3} more)" if len(at) > 3 else ""))
        return Text(" · ".join(parts))

    def _consider(self, rec: TrialRecord) -> None:
        """Rank a completed trial by its last value of the metric, as the report does."""
        if rec.status is not TrialStatus.COMPLETED or self._sweep is None:
            return
        value = rec.last.get(self._sweep.metric)
        if value is None or not math.isfinite(value):
            return
        lower = self._sweep.mode == "min"
        if self._best is None or (value < self._best[0] if lower else value > self._best[0]):
            self._best = (value, rec.trial_id)

    def _print(self, line: str) -> None:
        console = self._console or Console()
        console.print(Text(line), soft_wrap=True)
        self._printed_at = _now()


def _now() -> float:
    return time.time()
