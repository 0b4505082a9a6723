"""Each of abl's uses of Ray's internals (abl.search.raycompat) still does what abl assumes.

These run the real Ray (a small Tune experiment on the shared local cluster): one failing
means Ray changed underneath abl, and raycompat.py needs a look before the pin moves.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any, ClassVar

import pytest
import ray.cloudpickle
from ray import tune
from ray.tune.search.basic_variant import BasicVariantGenerator

from abl.search import raycompat

pytestmark = pytest.mark.ray


def trainable() -> Any:
    """Tune's trainable, made here so Ray pickles it by value (workers cannot import tests)."""

    def train(config: dict[str, Any]) -> None:
        import tempfile

        if config["x"] < 0:
            raise ValueError("boom")
        for step in range(2):
            with tempfile.TemporaryDirectory() as d:
                Path(d, "w").write_text(str(step))
                checkpoint = tune.Checkpoint.from_directory(d)
                tune.report({"loss": config["x"] + step}, checkpoint=checkpoint)

    return train


class Errors(tune.Callback):
    """What raycompat reads of a failed trial, at the moment the sinks read it."""

    seen: ClassVar[dict[str, Any]] = {}

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        Errors.seen = {
            "text": raycompat.trial_error_text(trial),
            "cause": raycompat.trial_error_cause(trial),
        }


@pytest.fixture(scope="module")
def run(ray_local, tmp_path_factory) -> Path:
    """A finished experiment's folder: two trials that checkpointed, one that failed."""
    root = tmp_path_factory.mktemp("raycompat")
    grid = BasicVariantGenerator(
        points_to_evaluate=[{"x": 1}, {"x": 2}, {"x": -1}], max_concurrent=1
    )
    tune.Tuner(
        trainable(),
        param_space={"x": None},
        tune_config=tune.TuneConfig(metric="loss", mode="min", search_alg=grid, num_samples=3),
        run_config=tune.RunConfig(
            name="tune", storage_path=str(root), callbacks=[Errors()], verbose=0
        ),
    ).fit()
    return root / "tune"


def test_a_trials_error_file_and_pickled_cause_are_there_at_on_trial_error(run: Path) -> None:
    assert "ValueError: boom" in Errors.seen["text"]
    assert "Failure # " not in Errors.seen["text"]  # the last section's body only
    cause = Errors.seen["cause"]
    assert isinstance(cause, ValueError) and str(cause) == "boom"


def test_the_snapshot_names_each_trials_status_folder_and_checkpoint(run: Path) -> None:
    assert len(list(run.glob(raycompat.SNAPSHOT_GLOB))) == 1
    snapshot = raycompat.Snapshot.newest(run)
    trials = list(snapshot.trials())
    assert sorted(t.status for t in trials) == ["ERROR", "TERMINATED", "TERMINATED"]
    done = next(t for t in trials if t.status == "TERMINATED")
    assert (run / done.trial_dir_name).is_dir()
    assert Path(done.checkpoint).name == "checkpoint_000001"
    assert all(any(p.match(g) for g in raycompat.STATE_GLOBS) for p in run.glob("*-state-*"))


def test_a_repointed_checkpoint_and_a_changed_status_are_what_tune_restores(run: Path) -> None:
    snapshot = raycompat.Snapshot.newest(run)
    done = next(t for t in snapshot.trials() if t.status == "TERMINATED")
    done.repoint("checkpoint_000000", {"loss": 7.0, "training_iteration": 1}, next_index=5)
    done.status = "PAUSED"
    snapshot.save()
    analysis = tune.ExperimentAnalysis(str(run))
    trial = next(t for t in analysis.trials if t.trial_id == done.trial_id)
    assert trial.status == "PAUSED"
    assert Path(trial.checkpoint.path).name == "checkpoint_000000"
    assert trial.last_result["loss"] == 7.0
    assert trial.storage.current_checkpoint_index == 5
    done.repoint(None, {}, next_index=0)
    snapshot.save()
    trial = next(t for t in tune.ExperimentAnalysis(str(run)).trials if t.trial_id == done.trial_id)
    assert trial.checkpoint is None


def test_the_grid_searchers_running_trials_are_released_in_its_saved_state(
    run: Path, tmp_path: Path
) -> None:
    (saved,) = run.glob(raycompat.GRID_STATE_GLOB)
    assert isinstance(ray.cloudpickle.loads(saved.read_bytes())["_live_trials"], set)
    gen = BasicVariantGenerator(points_to_evaluate=[{"x": i} for i in range(3)], max_concurrent=1)
    gen.add_configurations(
        {
            "e": {
                "run": trainable(),
                "config": {"x": None},
                "num_samples": 3,
                "storage_path": str(tmp_path),
            }
        }
    )
    running = gen.next_trial()
    assert gen.next_trial() is None
    gen.save_to_dir(str(tmp_path), session_str="s")
    raycompat.release_finished(tmp_path, {running.trial_id})
    resumed = BasicVariantGenerator(points_to_evaluate=[{"x": i} for i in range(3)])
    resumed.restore_from_dir(str(tmp_path))
    assert resumed.next_trial() is not None


def test_a_restored_tuners_run_config_is_the_one_it_runs_with(run: Path) -> None:
    tuner = tune.Tuner.restore(str(run), trainable=trainable())
    config = raycompat.run_config(tuner)
    assert isinstance(config, tune.RunConfig) and config.name == "tune"
    config.callbacks = []
    assert raycompat.run_config(tuner).callbacks == []


def test_a_report_without_the_metric_is_read_from_tunes_error(ray_local, tmp_path: Path) -> None:
    tuner = tune.Tuner(
        lambda config: tune.report({"other/metric": 1.5}),
        tune_config=tune.TuneConfig(metric="loss", mode="min"),
        run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
    )
    with pytest.raises(Exception) as caught:
        tuner.fit()
    result = raycompat.report_without_metric(caught.value)
    assert result is not None and result["other/metric"] == 1.5
    assert raycompat.report_without_metric(ValueError("boom")) is None


def test_mixins_become_bases_and_name_actor_sets_the_repr(capsys) -> None:
    class Mixin:
        pass

    fn = tune.with_resources(tune.with_parameters(trainable(), y=1), {"cpu": 1})
    cls = tune.trainable.wrap_function(raycompat.with_mixins(fn, Mixin))
    assert issubclass(cls, Mixin)
    actor = cls.__new__(cls)
    raycompat.name_actor(actor, "sweep t1", reused=True)
    assert repr(actor) == "sweep t1"
    assert capsys.readouterr().out == ":actor_name:sweep t1\n"


def test_raylet_errors_are_dropped_and_the_rest_printed(monkeypatch, capsys) -> None:
    from ray._private import worker

    assert '"pid": "raylet"' in inspect.getsource(worker.listen_error_messages)
    monkeypatch.setattr(worker, "print_to_stdstream", worker.print_to_stdstream)  # put back after
    raycompat.drop_raylet_errors()
    raycompat.drop_raylet_errors()  # once is enough
    worker.print_to_stdstream({"lines": ["died"], "pid": "raylet", "is_err": False}, False)
    worker.print_to_stdstream({"lines": ["kept"], "pid": 7, "ip": "1", "is_err": False}, True)
    assert capsys.readouterr().out == "kept\n"


@pytest.mark.parametrize(
    "name", [raycompat.SNAPSHOT_LOGGER, raycompat.WORKER_LOGGER, raycompat.TOKEN_LOGGER]
)
def test_the_loggers_abl_filters_are_rays_modules_loggers(name: str) -> None:
    assert importlib.import_module(name).logger.name == name
