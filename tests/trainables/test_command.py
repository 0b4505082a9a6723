"""The command trainable without Ray: command lines in every style (Hydra's own parser reads the
overrides back), metric sources read as files grow, the abl.report client, the checks before a
sweep, and stopping a command's whole process group."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser

from abl import report
from abl.errors import AblError
from abl.space import load_space
from abl.trainables.command import Command, _source, _stop, parse_command
from abl.trainables.trainable import lookup

CONFIG = {"model.pe_type": "rope", "train.lr": 0.001, "model.is_causal": False, "seed": 3}


def test_hydra_overrides_read_back_as_the_values_given(tmp_path: Path) -> None:
    config = {**CONFIG, "data.path": "a b,c's", "model.dims": [8, 16], "train.warmup": None}
    argv = Command(command="python train.py", style="hydra").argv(config, tmp_path)
    assert argv[0] == sys.executable and argv[-1] == "hydra.run.dir=."
    parsed = OverridesParser.create().parse_overrides(argv[2:-1])
    assert {o.key_or_group: o.value() for o in parsed} == config


def test_flags_in_either_form_and_booleans_as_switches(tmp_path: Path) -> None:
    config = {**CONFIG, "model.is_causal": True, "dims": [8, 16], "tag": None, "flat": False}
    spaced = Command(command="python train.py", style="flags").argv(config, tmp_path)[2:]
    assert spaced == [
        "--model.pe_type", "rope", "--train.lr", "0.001", "--model.is_causal",
        "--seed", "3", "--dims", "8", "16",
    ]  # fmt: skip
    joined = Command(command="python train.py", style="flags=").argv(CONFIG, tmp_path)[2:]
    assert joined == ["--model.pe_type=rope", "--train.lr=0.001", "--seed=3"]


@pytest.mark.parametrize("style", ["json", "yaml"])
def test_a_config_file_nested_at_its_dots_ends_the_command(tmp_path: Path, style: str) -> None:
    argv = Command(command="python train.py --config", style=style).argv(CONFIG, tmp_path)
    assert argv[2] == "--config" and Path(argv[3]).parent == tmp_path
    text = Path(argv[3]).read_text()
    loaded = json.loads(text) if style == "json" else yaml.safe_load(text)
    assert loaded == {
        "model": {"pe_type": "rope", "is_causal": False},
        "train": {"lr": 0.001},
        "seed": 3,
    }


def test_the_seed_goes_under_the_key_the_script_reads_or_only_to_the_environment(
    tmp_path: Path,
) -> None:
    renamed = Command(command="x", style="flags=", seed="training.seed").argv(CONFIG, tmp_path)
    assert "--training.seed=3" in renamed and "--seed=3" not in renamed
    dropped = Command(command="x", style="flags=", seed=None).argv(CONFIG, tmp_path)
    assert not any("seed" in a for a in dropped)


def test_the_command_s_files_are_taken_from_where_abl_runs(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text("")
    argv = Command(command="python train.py --data missing.txt").argv({}, tmp_path / "work")
    assert argv[1] == str(tmp_path / "train.py") and argv[2:] == ["--data", "missing.txt"]


def rows(spec: Command, work: Path, text: str, name: str) -> list[dict[str, float]]:
    """The rows of ``text``, written to ``work/name`` once the source looks (as a script would)."""
    source = _source(spec, work)
    (work / name).write_text(text)
    return list(source.rows())


def test_json_lines_are_read_as_they_grow_never_half_a_line(tmp_path: Path) -> None:
    spec = Command(command="x", metrics={"jsonl": "m.jsonl"}, names={"val_loss": "val/loss"})
    source = _source(spec, tmp_path)
    assert list(source.rows()) == []  # no file yet
    log = tmp_path / "m.jsonl"
    log.write_text('{"epoch": 1, "val_loss": 0.5, "tag": "a", "ok": true}\n{"epoch": 2, "va')
    assert list(source.rows()) == [{"epoch": 1.0, "val/loss": 0.5}]
    with log.open("a") as f:
        f.write('l_loss": 0.25, "nested": {"acc": 0.9}}\nnot json\n')
    assert list(source.rows()) == [{"epoch": 2.0, "val/loss": 0.25, "nested/acc": 0.9}]


def test_csv_rows_after_the_header(tmp_path: Path) -> None:
    text = "step,val_loss,note\n1,0.5,x\n2,0.4,y\n"
    assert rows(Command(command="x", metrics={"csv": "r.csv"}), tmp_path, text, "r.csv") == [
        {"step": 1.0, "val_loss": 0.5},
        {"step": 2.0, "val_loss": 0.4},
    ]


def test_printed_lines_matched_by_the_space_s_regex(tmp_path: Path) -> None:
    text = "loading\nepoch 3 | val_loss 2.01 | acc 0.41\nepoch 4 | val_loss nan | acc 0.4\n"
    spec = Command(
        command="x",
        metrics={"stdout": r"epoch (?P<epoch>\d+) \| val_loss (?P<val_loss>\S+)"},
        names={"val_loss": "val/loss"},
    )
    (first, second) = rows(spec, tmp_path, text, "stdout.log")
    assert first == {"epoch": 3.0, "val/loss": 2.01}
    assert second["epoch"] == 4.0 and second["val/loss"] != second["val/loss"]  # NaN: diverged


def test_tensorboard_scalars_one_row_per_step_once_the_writer_moves_on(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    spec = Command(command="x", metrics={"tensorboard": "tb"}, names={"val/loss_": "val/loss"})
    source = _source(spec, tmp_path)
    assert list(source.rows()) == []  # no event file yet
    writer = SummaryWriter(str(tmp_path / "tb" / "version_0"))  # Lightning's layout: a subfolder
    for step in (0, 1):
        writer.add_scalar("val/loss_", 1 / (step + 1), step)
        writer.add_scalar("train/loss", 2 / (step + 1), step)
    writer.flush()
    assert list(source.rows()) == [{"step": 0.0, "val/loss": 1.0, "train/loss": 2.0}]
    assert list(source.rows()) == []  # step 1 may still get scalars
    writer.add_scalar("val/loss_", 0.25, 2)
    writer.close()
    assert list(source.rows()) == [{"step": 1.0, "val/loss": 0.5, "train/loss": 1.0}]
    assert list(source.rows(final=True)) == [{"step": 2.0, "val/loss": 0.25}]  # the script ended


def test_the_last_line_without_a_newline_counts_once_the_script_ended(tmp_path: Path) -> None:
    source = _source(Command(command="x", metrics={"jsonl": "m.jsonl"}), tmp_path)
    (tmp_path / "m.jsonl").write_text('{"val_loss": 0.5}\n{"val_loss": 0.4}')
    assert list(source.rows()) == [{"val_loss": 0.5}]
    assert list(source.rows(final=True)) == [{"val_loss": 0.4}]


def test_the_report_client_writes_lines_under_abl_and_prints_alone(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.delenv("ABL_REPORT_FILE", raising=False)
    report({"val/loss": 0.5}, step=1)
    assert "step 1: val/loss=0.5" in capsys.readouterr().err
    monkeypatch.setenv("ABL_REPORT_FILE", str(tmp_path / "abl-report.jsonl"))
    source = _source(Command(command="x"), tmp_path)
    report({"val/loss": 0.25}, step=2)
    report({"val/loss": float("nan")})
    (first, second) = source.rows()
    assert first == {"val/loss": 0.25, "step": 2.0} and second["val/loss"] != second["val/loss"]


def space_file(tmp_path: Path, trainable: str) -> str:
    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\ntrainable: {trainable}\ngrid: {{lr: [1]}}\n")
    return str(path)


@pytest.mark.parametrize(
    ("trainable", "message"),
    [
        (
            "{comand: python t.py}",
            "unknown key 'trainable.comand'; allowed here: command, style, metrics, names, seed, "
            "timeout_s, grace_s, config, check_flags, step; did you mean 'trainable.command'? "
            "(command trainable, trainable.comand, ",
        ),
        (
            "{command: python t.py, style: hydro}",
            "trainable.style must be one of hydra, flags, flags=, json, yaml; got 'hydro'; "
            "did you mean 'hydra'?",
        ),
        (
            "{command: python t.py, metrics: {stdout: 'val (.*)'}}",
            "trainable.metrics needs a stdout regex that names its metrics",
        ),
        (
            "{command: python t.py, metrics: {tb: logs}}",
            "trainable.metrics must be report, {jsonl: FILE}",
        ),
        ("{command: python t.py, timeout_s: 0}", "trainable.timeout_s must be > 0; got 0"),
        ("{command: python nowhere.py}", "command 'python nowhere.py': no file nowhere.py in"),
        ("{command: no-such-program --x}", "no program 'no-such-program' on PATH"),
    ],
)
def test_a_bad_command_trainable_is_one_line_before_anything_runs(
    tmp_path: Path, monkeypatch, trainable: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.py").write_text("")
    with pytest.raises(AblError) as caught:
        load_space(space_file(tmp_path, trainable))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_command_space_writes_and_reads_back_the_same(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.py").write_text("")
    trainable = "{command: python t.py, metrics: {jsonl: m.jsonl}, names: {a: b}, timeout_s: 5}"
    space = load_space(space_file(tmp_path, trainable))
    (tmp_path / "again.yaml").write_text(space.to_yaml())
    assert load_space(str(tmp_path / "again.yaml")).trainable == space.trainable
    assert str(space.trainable) == "python t.py" and "metrics: {jsonl: m.jsonl}" in space.to_yaml()
    assert lookup(space.trainable).resolve({"lr": 1}, "x") == {"lr": 1}


def test_a_stop_ends_the_command_and_its_children_even_if_they_ignore_sigterm(
    tmp_path: Path,
) -> None:
    script = tmp_path / "stubborn.py"
    script.write_text(
        textwrap.dedent("""
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(child.pid, flush=True)
        time.sleep(60)
        """)
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    child = int(proc.stdout.readline())  # type: ignore[union-attr]
    started = time.monotonic()
    _stop(proc, grace_s=0.5)
    assert proc.returncode == -signal.SIGKILL and time.monotonic() - started >= 0.5
    for _ in range(50):  # the child, killed with its group, is reaped by init
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"the command's child {child} outlived the stop")


def test_a_command_trainable_is_parsed_from_the_yaml_mapping() -> None:
    spec = parse_command({"command": "python t.py", "metrics": "report"})
    assert spec.metrics == ("report", "") and spec.style == "flags" and spec.grace_s == 10


def test_a_retry_reads_its_own_rows_not_those_the_run_before_it_left(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    (tmp_path / "m.jsonl").write_text('{"val_loss": 9.0}\n')
    (tmp_path / "r.csv").write_text("step,val_loss\n1,9.0\n2,8.0\n")
    old = SummaryWriter(str(tmp_path / "tb"))
    old.add_scalar("val_loss", 9.0, 0)
    old.close()
    jsonl = _source(Command(command="x", metrics={"jsonl": "m.jsonl"}), tmp_path)
    table = _source(Command(command="x", metrics={"csv": "r.csv"}), tmp_path)
    events = _source(Command(command="x", metrics={"tensorboard": "tb"}), tmp_path)
    with (tmp_path / "m.jsonl").open("a") as f:  # the retry appends
        f.write('{"val_loss": 0.5}\n')
    (tmp_path / "r.csv").write_text("step,val_loss\n1,0.5\n")  # the retry writes the file anew
    new = SummaryWriter(str(tmp_path / "tb"))
    new.add_scalar("val_loss", 0.5, 0)
    new.close()
    assert list(jsonl.rows(final=True)) == [{"val_loss": 0.5}]
    assert list(table.rows(final=True)) == [{"step": 1.0, "val_loss": 0.5}]
    assert list(events.rows(final=True)) == [{"step": 0.0, "val_loss": 0.5}]


REPO = Path(__file__).resolve().parents[2]
HYDRA_APP = "{command: python examples/hydra_charlm/train.py, style: hydra, config: examples/hydra_charlm/conf/config.yaml}"


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        (
            "{training.block_siz: [8]}",
            "training.block_siz is not a key of the Hydra app's config "
            "(examples/hydra_charlm/conf/config.yaml; a new key is +training.block_siz); "
            "did you mean 'training.block_size'?",
        ),
        ("{training.block_size: [8, abc]}", "training.block_size is int in the Hydra app's"),
        ("{model.n_embd: [2.5]}", "model.n_embd is int in the Hydra app's config"),
        ("{model: [bigram_v9]}", "refuses a trial: In 'config': Could not find 'model/bigram_v9'"),
    ],
)
def test_a_hydra_app_s_own_config_checks_every_override_before_anything_runs(
    tmp_path: Path, monkeypatch, grid: str, message: str
) -> None:
    monkeypatch.chdir(REPO)
    space = tmp_path / "s.yaml"
    space.write_text(f"name: s\ntrainable: {HYDRA_APP}\ngrid: {grid}\n")
    with pytest.raises(AblError, match=re.escape(message)):
        load_space(str(space))


def test_overrides_the_hydra_app_takes_pass_its_check(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    space = tmp_path / "s.yaml"
    grid = "{model.pe_type: [randn, rope], training.learning_rate: [1, 0.01], +extra.k: [1]}"
    space.write_text(f"name: s\ntrainable: {HYDRA_APP}\ngrid: {grid}\nrepeats: 2\n")
    with pytest.raises(
        AblError,
        match=re.escape("set trainable.seed to the key it reads its seed from (training.seed?)"),
    ):
        load_space(str(space))
    with_seed = HYDRA_APP.replace("}", ", seed: training.seed}")
    space.write_text(f"name: s\ntrainable: {with_seed}\ngrid: {grid}\nrepeats: 2\n")
    assert load_space(str(space)).trainable.config == "examples/hydra_charlm/conf/config.yaml"


def test_flags_checked_against_the_script_s_own_help(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.py").write_text(
        "import argparse\np = argparse.ArgumentParser()\n"
        "p.add_argument('--lr', type=float)\np.add_argument('--n-layer', type=int)\n"
        "p.add_argument('--causal', action='store_true')\np.parse_args()\n"
    )
    trainable = "{command: python t.py, style: flags=, check_flags: true}"
    (tmp_path / "bad.yaml").write_text(f"name: bad\ntrainable: {trainable}\ngrid: {{lrr: [1]}}\n")
    with pytest.raises(AblError) as caught:
        load_space(str(tmp_path / "bad.yaml"))
    assert str(caught.value).startswith("--lrr is not a flag of 'python t.py' (its --help lists ")
    assert "did you mean '--lr'?" in str(caught.value)
    (tmp_path / "ok.yaml").write_text(
        f"name: ok\ntrainable: {trainable}\ngrid: {{lr: [0.1], n-layer: [2], causal: [true, false]}}\n"
    )
    assert load_space(str(tmp_path / "ok.yaml")).trainable.check_flags


def test_rows_of_an_earlier_run_that_carry_their_steps_are_read_again(tmp_path: Path) -> None:
    """After a driver kill, the steps Tune never received are in the script's file: read from
    the top (abl keeps each step once), they are not lost; rows without a step are skipped."""
    (tmp_path / "m.jsonl").write_text(
        '{"step": 1, "val_loss": 0.5}\n{"step": 2, "val_loss": 0.4}\n'
    )
    source = _source(Command(command="x", metrics={"jsonl": "m.jsonl"}), tmp_path)
    with (tmp_path / "m.jsonl").open("a") as f:
        f.write('{"step": 3, "val_loss": 0.3}\n')
    assert [r["step"] for r in source.rows()] == [1.0, 2.0, 3.0]
    counted = _source(Command(command="x", metrics={"jsonl": "m.jsonl"}, step=None), tmp_path)
    assert list(counted.rows()) == []
