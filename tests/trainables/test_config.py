"""Trial-config schemas: pydantic models per component, checked through one error formatter."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any, Literal

import pytest
from pydantic import Field, ValidationError

from abl.errors import AblError, validation_message
from abl.trainables.config import ComponentConfig, build, knobs, param, schema_of
from abl.trainables.models import MODELS
from abl.trainables.spec import TRAINABLES
from abl.trainables.tasks import TASKS


class Knobs(ComponentConfig):
    width: int = Field(8, ge=1, description="a width")
    rate: float = Field(0.5, gt=0, lt=1, description="a fraction")
    flag: bool = Field(False, description="a switch")
    name: str = Field("", description="a name")
    mode: Literal["fast", "slow"] = Field("fast", description="a choice")


def test_ints_are_floats_and_whole_floats_are_ints() -> None:
    cfg = build(Knobs, {"width": 2.0, "rate": 0.25}, section="model")
    assert (cfg.width, type(cfg.width)) == (2, int)
    assert TRAINABLES.get("forecast").resolve({"train.lr": 1}, "x")["train.lr"] == 1.0


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"width": True}, "model.width must be a whole number; got True"),
        ({"width": 2.5}, "model.width must be a whole number; got 2.5"),
        ({"width": "3"}, "model.width must be a whole number; got '3'"),
        ({"rate": "abc"}, "model.rate must be a number; got 'abc'"),
        ({"rate": False}, "model.rate must be a number; got False"),
        ({"flag": 1}, "model.flag must be true or false; got 1"),
        ({"flag": "yes"}, "model.flag must be true or false; got 'yes'"),
        ({"name": 5}, "model.name must be a string; got 5"),
        ({"width": 0}, "model.width must be >= 1; got 0"),
        (
            {"mode": "fats"},
            "model.mode must be one of fast, slow; got 'fats'; did you mean 'fast'?",
        ),
        (
            {"widht": 3},
            "unknown parameter 'model.widht'; allowed here: width, rate, flag, name, mode; "
            "did you mean 'model.width'?",
        ),
    ],
)
def test_a_mistake_is_one_line_with_the_rule_what_was_given_and_where(values, expected) -> None:
    with pytest.raises(AblError) as info:
        build(Knobs, values, section="model", where="space.yaml")
    message = str(info.value)
    assert message.startswith(expected) and message.endswith(", model." + next(iter(values)) + ")")
    assert "(space.yaml, " in message and "\n" not in message


def test_the_formatter_reads_a_raw_validation_error() -> None:
    with pytest.raises(ValidationError) as info:
        Knobs.model_validate({"rate": 1})
    assert validation_message(info.value, Knobs, where="here") == (
        "rate must be in (0, 1); got 1 (here, rate)"
    )


def test_a_plain_dataclass_config_is_checked_the_same() -> None:
    @dataclasses.dataclass
    class Old:
        hidden: int = param(32, "hidden units")

    assert build(Old, {"hidden": 4.0}, section="model") == Old(hidden=4)
    assert schema_of(Old).model_fields["hidden"].description == "hidden units"
    with pytest.raises(AblError, match=r"did you mean 'model\.hidden'"):
        build(Old, {"hiden": 3}, section="model")


def test_abl_trainables_lists_type_rule_default_and_help() -> None:
    (width, rate, *_, mode) = knobs(Knobs, "model")
    assert (width.name, width.type_name, width.default, width.help) == (
        "model.width",
        "int >= 1",
        8,
        "a width",
    )
    assert rate.type_name == "float in (0, 1)" and mode.type_name == "fast|slow"


@pytest.mark.parametrize("kind", MODELS.names())
def test_a_models_torch_free_config_is_its_class_config(kind: str) -> None:
    assert MODELS.config_of(kind) is MODELS.get(kind).Config


@pytest.mark.parametrize("name", TASKS.names())
def test_a_tasks_torch_free_config_is_its_class_config(name: str) -> None:
    task, config = TASKS.get(name), TASKS.config_of(name)
    assert config is task.Config
    assert (task.metrics, task.next_step_targets) == (
        config.task_metrics,
        config.task_next_step_targets,
    )


@pytest.mark.parametrize("name", TRAINABLES.names())
def test_every_knob_of_every_trainable_has_a_description(name: str) -> None:
    spec = TRAINABLES.get(name)
    for kind in spec.models:
        missing = [k for k, knob in spec.schema(kind).items() if not knob.help]
        assert not missing, f"{name}, model.kind={kind}: {missing}"


def test_configs_are_frozen() -> None:
    cfg = build(Knobs, {}, section="model")
    with pytest.raises(ValidationError):
        cfg.width = 3  # type: ignore[misc]


def _python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_every_schema_resolves_without_torch() -> None:
    code = (
        "import sys\n"
        "from abl.trainables.spec import TRAINABLES\n"
        "for name in TRAINABLES.names():\n"
        "    spec = TRAINABLES.get(name)\n"
        "    for kind in spec.models:\n"
        "        spec.resolve({'model.kind': kind}, 'x')\n"
        "    spec.metrics()\n"
        "from abl.space.load import load_space\n"
        "from abl.space.schema import builtin_spaces_dir\n"
        "for path in sorted(builtin_spaces_dir().glob('*.yaml')):\n"
        "    load_space(str(path), models=False)\n"
        "print('torch' in sys.modules)\n"
    )
    assert _python(code) == "False"  # a sweep checks its space while Ray starts, torch later


def test_the_package_face_is_lazy() -> None:
    code = (
        "import sys, abl.trainables as t\n"
        "light = 'torch' not in sys.modules and 'pydantic' not in sys.modules\n"
        "names = [getattr(t, n) for n in t.__all__]\n"
        "print(light, len(names), t.TaskInfo.__name__)\n"
    )
    assert _python(code) == "True 14 TaskInfo"


def resolved(**given: Any) -> dict[str, Any]:
    return TRAINABLES.get("forecast").resolve(given, "space.yaml")


def test_trial_configs_come_back_typed_and_complete() -> None:
    config = resolved(**{"train.lr": 1, "model.d_model": 16.0})
    assert config["train.lr"] == 1.0 and type(config["train.lr"]) is float
    assert config["model.d_model"] == 16 and type(config["model.d_model"]) is int
    assert list(config)[:2] == ["seed", "model.kind"] and "train.restart_on_spike" in config


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"train.restart_on_spike": 0.5}, "train.restart_on_spike must be 0 (off) or a factor > 1"),
        ({"seed": "1"}, "seed must be a whole number; got '1' (space.yaml, seed)"),
        ({"data.val_fraction": 1}, "data.val_fraction must be in (0, 1); got 1"),
    ],
)
def test_trial_config_mistakes(given: dict[str, Any], expected: str) -> None:
    with pytest.raises(AblError) as info:
        resolved(**given)
    assert str(info.value).startswith(expected)


class Inner(ComponentConfig):
    depth: int = Field(1, ge=0, le=4, description="a depth")


class Outer(ComponentConfig):
    inner: Inner = Field(default_factory=Inner, description="nested")
    blocks: list[Inner] = Field(default_factory=list, min_length=1, description="a list")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"inner": {"depht": 1}}, "unknown key 'inner.depht'; allowed here: depth; did you mean"),
        ({"blocks": [{"depth": 9}]}, "blocks.0.depth must be in [0, 4]; got 9 (f.yaml, blocks."),
        ({"blocks": []}, "blocks must have at least 1 item(s); got [] (f.yaml, blocks)"),
    ],
)
def test_the_formatter_follows_nested_models_and_lists(raw, expected) -> None:
    with pytest.raises(ValidationError) as info:
        Outer.model_validate(raw)
    assert validation_message(info.value, Outer, where="f.yaml").startswith(expected)
