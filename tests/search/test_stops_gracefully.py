"""The Ctrl-C guard of a sweep, in this process with real signals: what a second Ctrl-C does
before Tune returns, after an interrupted sweep returns, and after one Tune completed."""

from __future__ import annotations

import logging
import os
import signal
import time

import pytest

from abl.search.sweep import HURRYING, STOPPING, _stops_gracefully


class Callback:
    """What the guard uses of abl's sink callback: whether the sinks opened, stopping() and
    hurry()."""

    opened = True

    def __init__(self) -> None:
        self.hurried = self.told_stopping = 0

    def stopping(self) -> None:
        self.told_stopping += 1

    def hurry(self) -> None:
        self.hurried += 1


def ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)  # the handler runs in the main thread at the next bytecode


def tune_takes_the_first_ctrl_c() -> None:
    # Tune's handler logs this on the first Ctrl-C (ray/tune/tune.py), then puts abl's back.
    logging.getLogger("ray.tune.tune").warning("Stop signal received (e.g. via SIGINT/Ctrl+C)")


def test_ctrl_c_while_tune_stops_hurries_the_sinks_and_says_so_once(capsys) -> None:
    callback = Callback()
    with _stops_gracefully(callback, None) as guard:
        tune_takes_the_first_ctrl_c()
        ctrl_c()
        ctrl_c()
        assert guard.stopped and callback.hurried == 2
        guard.fit_returned(interrupted=True)
        ctrl_c()  # while the interrupted sweep writes its last lines
    assert callback.hurried == 3
    err = capsys.readouterr().err
    assert err.count(STOPPING) == 1 and err.count(HURRYING) == 1, err


def test_a_sweep_stopped_after_its_last_trial_still_counts_as_stopped() -> None:
    """Tune took the Ctrl-C when every trial had finished: the sweep is stopped all the same
    (its report is skipped, exit 130), and a later Ctrl-C hurries instead of aborting."""
    callback = Callback()
    with _stops_gracefully(callback, None) as guard:
        tune_takes_the_first_ctrl_c()
        guard.fit_returned(interrupted=guard.stopped)  # as _execute does, with 0 unfinished
        ctrl_c()
    assert guard.stopped and callback.hurried == 1
    assert callback.told_stopping == 1  # the sinks know: MLflow's parent run ends KILLED


def test_ctrl_c_while_a_completed_sweep_builds_its_report_is_a_keyboard_interrupt() -> None:
    callback = Callback()
    before = signal.getsignal(signal.SIGINT)  # Python's, or one an earlier Tune run left
    with pytest.raises(KeyboardInterrupt), _stops_gracefully(callback, None) as guard:
        guard.fit_returned(interrupted=False)
        ctrl_c()
    assert not guard.stopped and callback.hurried == callback.told_stopping == 0
    assert signal.getsignal(signal.SIGINT) is before  # put back as it was found


def test_tune_s_handler_run_twice_is_a_second_ctrl_c(capsys) -> None:
    """A second Ctrl-C that lands while Tune still handles the first runs Tune's handler again
    (it has not yet put abl's back): one stopping line, then the sinks hurry, said once."""
    callback = Callback()
    with _stops_gracefully(callback, None) as guard:
        tune_takes_the_first_ctrl_c()
        tune_takes_the_first_ctrl_c()
        ctrl_c()
        guard.fit_returned(interrupted=True)
    assert callback.told_stopping == 1 and callback.hurried == 2
    err = capsys.readouterr().err
    assert err.count(STOPPING) == 1 and err.count(HURRYING) == 1, err
