"""Space files: parsing, expansion, and one test per kind of user mistake."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from abl.errors import AblError
from abl.space import count_trials, expand, load_space
from abl.space.load import trainable_of
from abl.space.schema import builtin_spaces_dir

BASE = """
name: t
trainable: forecast
fixed: {train.epochs: 1}
"""


def write(tmp_path: Path, text: str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, *overrides: str):
    return load_space(str(write(tmp_path, text)), list(overrides))


def configs(space):
    spec = trainable_of(space)
    return expand(space, spec)


def test_grid_is_the_cartesian_product_with_defaults_filled_in(tmp_path):
    space = load(
        tmp_path, BASE + "grid: {model.pe_type: [none, rope], train.lr: [1e-3, 3e-4, 5e-5]}"
    )
    cfgs = configs(space)
    assert count_trials(space) == len(cfgs) == 6
    assert {(c["model.pe_type"], c["train.lr"]) for c in cfgs} == {
        (p, lr) for p in ("none", "rope") for lr in (1e-3, 3e-4, 5e-5)
    }
    assert all(c["train.epochs"] == 1 and c["model.d_model"] == 64 for c in cfgs)  # fixed, default


def test_repeats_add_seeds_and_share_random_draws(tmp_path):
    text = (
        BASE
        + "sample: {train.lr: {loguniform: [1e-4, 1e-2]}}\nrepeats: 3\nsearch: {algorithm: random, samples: 2, seed: 7}"
    )
    cfgs = configs(load(tmp_path, text))
    assert len(cfgs) == 6
    assert [c["seed"] for c in cfgs] == [0, 1, 2, 0, 1, 2]
    assert (
        len({c["train.lr"] for c in cfgs[:3]}) == 1 and cfgs[0]["train.lr"] != cfgs[3]["train.lr"]
    )
    assert all(1e-4 <= c["train.lr"] <= 1e-2 for c in cfgs)


def test_random_search_is_reproducible_from_its_seed(tmp_path):
    text = (
        BASE
        + "sample: {train.lr: {uniform: [0.001, 0.01]}, model.d_model: {int: [8, 16]}}\nsearch: {algorithm: random, samples: 5, seed: %d}"
    )
    first, again, other = (configs(load(tmp_path, text % s)) for s in (1, 1, 2))
    assert first == again and first != other
    assert all(8 <= c["model.d_model"] <= 16 and isinstance(c["model.d_model"], int) for c in first)


def test_when_blocks_add_axes_only_where_they_match(tmp_path):
    text = (
        BASE
        + """
grid: {model.kind: [att, lstm]}
when:
  - if: {model.kind: lstm}
    grid: {model.n_layer: [1, 2, 3]}
  - if: {model.kind: att}
    fixed: {model.pe_type: rope}
"""
    )
    cfgs = configs(load(tmp_path, text))
    assert len(cfgs) == 4
    assert sorted(c["model.n_layer"] for c in cfgs if c["model.kind"] == "lstm") == [1, 2, 3]
    assert [c["model.pe_type"] for c in cfgs if c["model.kind"] == "att"] == ["rope"]


def test_tpe_counts_samples_times_repeats(tmp_path):
    space = load(
        tmp_path,
        BASE
        + "sample: {train.lr: {loguniform: [1e-4, 1e-2]}}\nrepeats: 2\nsearch: {algorithm: tpe, samples: 10}",
    )
    assert count_trials(space) == 20


def test_resolved_space_round_trips_through_yaml(tmp_path):
    text = (
        BASE
        + """
grid: {model.pe_type: [none, rope]}
when: [{if: {model.pe_type: rope}, sample: {train.lr: {loguniform: [1e-4, 1e-2]}}}]
search: {algorithm: random, samples: 3}
"""
    )
    space = load(tmp_path, text)
    again = load(tmp_path, space.to_yaml())
    assert again.model_dump(exclude={"source"}) == space.model_dump(exclude={"source"})


@pytest.mark.parametrize("path", sorted(builtin_spaces_dir().glob("*.yaml")), ids=lambda p: p.stem)
def test_every_builtin_space_validates(path):
    space = load_space(str(path))
    assert count_trials(space) >= 1


def test_att_timeseries_is_the_logbook_grid():
    assert count_trials(load_space("att_timeseries")) == 192


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: [unclosed", "invalid YAML"),
        ("- just\n- a list", "must be a mapping"),
        (
            BASE + "gird: {model.pe_type: [none]}",
            "unknown key 'gird'; allowed here: .*did you mean 'grid'",
        ),
        ("name: t\nfixed: {}", "missing required key 'trainable'"),
        (
            "name: t\ntrainable: forcast",
            "trainable must be one of .*forecast.*did you mean 'forecast'",
        ),
        (
            BASE + "grid: {model.pe_typ: [rope]}",
            "unknown parameter 'model.pe_typ'.*did you mean 'model.pe_type'",
        ),
        (
            BASE + "grid: {model.pe_type: [rope, roep]}",
            "pe_type must be one of none, randpe, sinpe, rope; got 'roep'; did you mean 'rope'",
        ),
        (BASE + "fixed: {train.epochs: five}", "train.epochs must be a whole number; got 'five'"),
        (
            BASE + "grid: {model.is_causal: [yes]}",
            "model.is_causal must be true or false; got 'yes'",
        ),
        (
            BASE + "fixed: {model.kind: lstm, model.is_qln: true}",
            "model.is_qln does not apply to model.kind=lstm",
        ),
        (
            BASE + "sample: {train.lr: {loguniform: [0, 1]}}\nsearch: {algorithm: random}",
            "loguniform needs low > 0",
        ),
        (
            BASE + "sample: {train.lr: {logunif: [1, 2]}}\nsearch: {algorithm: random}",
            "did you mean 'loguniform'",
        ),
        (
            BASE + "sample: {train.lr: {uniform: [1e-4, 1e-2]}}",
            "sample: needs search.algorithm random or tpe",
        ),
        (
            BASE + "metric: val/los",
            "metric must be one that trainable 'forecast' reports .*got 'val/los'",
        ),
        (
            BASE + "tune: {params: {train.lr: {loguniform: [1e-4, 1e-2]}}}\nrepeats: 2",
            "repeats must be 1 with tune:",
        ),
        (BASE + "repeats: 3\ngrid: {seed: [1, 2]}", "repeats runs seeds"),
        (BASE + "grid: {model.pe_type: []}", "grid.model.pe_type"),
        (
            BASE + "search: {algorithm: bayes}",
            "search.algorithm must be one of grid, random, tpe; got 'bayes'",
        ),
        (BASE + "repeats: 0", r"repeats must be >= 1 \(or adaptive seeds"),
    ],
    ids=lambda v: v if len(v) < 30 else None,
)
def test_mistakes_give_one_line_naming_the_file(tmp_path, text, expected):
    with pytest.raises(AblError, match=expected) as info:
        load(tmp_path, text)
    message = str(info.value)
    assert "\n" not in message and "space.yaml" in message


def test_file_problems(tmp_path):
    with pytest.raises(AblError, match="space file not found"):
        load_space(str(tmp_path / "nope.yaml"))
    (tmp_path / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(AblError, match="must be UTF-8"):
        load_space(str(tmp_path / "latin1.yaml"))
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 15)}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    with pytest.raises(AblError, match="aliases"):
        load(tmp_path, bomb)
    with pytest.raises(AblError, match="must be under"):
        load(tmp_path, "name: t\n" + "#" * (2 << 20))


def test_unknown_builtin_space_name_suggests_one():
    with pytest.raises(AblError, match="did you mean 'quickstart'"):
        load_space("quickstrat")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["search.samples=40"], "samples must be left out with algorithm grid; got samples: 40"),
        (["repeats=abc"], "repeats must be a whole number (or adaptive seeds"),
        (["+train.weight_decay=[1,2]"], "fixed.train.weight_decay takes one value"),
    ],
)
def test_settings_a_grid_would_ignore_and_plain_type_errors(tmp_path, overrides, expected):
    with pytest.raises(AblError) as info:
        load(tmp_path, BASE, *overrides)
    assert expected in str(info.value)
    assert "unable to parse" not in str(info.value) and ".bool" not in str(info.value)


def test_override_inside_a_when_block_decides_the_trials(tmp_path):
    space = load_space(
        str(builtin_spaces_dir() / "bigram_pe.yaml"),
        ["model.kind=bigram_att", "model.n_embd=64", "data.block_size=64"],
    )
    cfgs = configs(space)
    assert len(cfgs) == 3 * space.repeats  # pe_type only
    assert {(c["model.n_embd"], c["data.block_size"]) for c in cfgs} == {(64, 64)}


def test_an_alias_bomb_under_the_alias_cap_is_refused_quickly(tmp_path):
    # 73 aliases in ~530 bytes expand to 9**9 values (logbook-sized spaces have ~100)
    bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9)
    )
    text = bomb + "name: t\ntrainable: forecast\nfixed: {model.pe_type: *a8}\n"
    assert text.count("*") < 100 and len(text) < 700
    with pytest.raises(AblError) as info:
        load(tmp_path, text)
    assert "alias bomb" in str(info.value) and len(str(info.value)) < 300


def test_an_error_never_quotes_a_huge_value_whole(tmp_path):
    values = ", ".join(f"v{i:05d}" for i in range(5000))
    with pytest.raises(AblError) as info:
        load(tmp_path, BASE + f"sample: {{train.lr: {{choice: {{x: [{values}]}}}}}}\n")
    message = str(info.value)
    assert len(message) < 400 and "v04999" not in message
    assert "(sample.train.lr, " in message and message.endswith("space.yaml)")


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        (
            "[predict/mse_regresive]",
            "got 'predict/mse_regresive'; did you mean 'predict/mse_regressive'?",
        ),
        ("[perf/samples_per_s]", "'perf/samples_per_s' is a measurement"),
    ],
)
def test_report_metrics_are_reported_scores(tmp_path, report, expected):
    with pytest.raises(AblError) as info:
        load(tmp_path, BASE + f"report: {report}\n")
    assert expected in str(info.value) and "report[0]" in str(info.value)


def test_report_metrics_are_kept(tmp_path):
    assert load(tmp_path, BASE + "report: [predict/mse_regressive]\n").report == [
        "predict/mse_regressive"
    ]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["data.source=csv", "data.path=missing.csv"], "path must be an existing CSV file"),
        (["train.epochs=0"], "train.epochs must be >= 1; got 0 ("),
        (["train.lr=-1"], "train.lr must be > 0; got -1 ("),
        (["model.kind=att_mh", "model.n_head=3"], "d_model must divide by n_head"),
    ],
)
def test_what_a_trial_would_refuse_is_refused_before_ray(overrides, expected):
    # load_space runs for --dry-run and before any sweep starts Ray or writes a run directory
    with pytest.raises(AblError) as info:
        load_space("quickstart", overrides)
    message = str(info.value)
    assert expected in message and f"from override '{overrides[-1]}'" in message


def test_every_builtin_space_passes_the_preflight():
    for path in sorted(builtin_spaces_dir().glob("*.yaml")):
        load_space(str(path))  # builds each distinct task once and each model on meta


def test_adaptive_repeats_parse_count_and_round_trip(tmp_path):
    from abl.space import trial_range

    space = load(
        tmp_path,
        BASE + "grid: {model.pe_type: [none, rope]}\nrepeats: {min: 2, max: 6, margin: 0.01}",
    )
    assert space.adaptive is not None and space.adaptive.alpha == 0.05
    assert space.adaptive.futility == 0.1  # the default conditional-power threshold
    off = load(
        tmp_path, BASE + "grid: {model.pe_type: [none, rope]}", "repeats={max: 4, futility: null}"
    )
    assert off.adaptive.futility is None
    assert space.seeds == 6 and "seed" in space.sweep_keys()
    assert trial_range(space) == (4, 12)
    cfgs = configs(space)  # max seeds of each configuration, in a row: the searcher's order
    assert [(c["model.pe_type"], c["seed"]) for c in cfgs[:7]] == [
        *(("none", s) for s in range(6)),
        ("rope", 0),
    ]
    again = load(tmp_path, space.to_yaml())
    assert again.adaptive == space.adaptive
    hydra_style = load(
        tmp_path, BASE + "grid: {model.pe_type: [none, rope]}", "repeats={min:3,max:4}"
    )
    assert (hydra_style.adaptive.min, hydra_style.adaptive.max) == (3, 4)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("repeats={min: 2, max: 1}", "repeats.max must be >= 2; got 1"),
        ("repeats={min: 4, max: 3}", "repeats.max must be at least min (4); got 3"),
        ("repeats={max: 4, alpha: 2}", "repeats.alpha must be in (0, 1); got 2"),
        ("repeats={max: 4, margn: 0.1}", "unknown key 'repeats.margn'"),
        ("repeats={max: 4, futility: 1}", "repeats.futility must be less than 1; got 1"),
        ("repeats=0", "repeats must be >= 1 (or adaptive seeds {min: 2, max: 10"),
        ("repeats=two", "repeats must be a whole number (or adaptive seeds"),
    ],
)
def test_adaptive_repeats_mistakes_are_one_line(tmp_path, override, expected):
    with pytest.raises(AblError, match="^" + re.escape(expected)):
        load(tmp_path, BASE + "grid: {model.pe_type: [none, rope]}", override)


def test_adaptive_repeats_need_a_fixed_set_of_configurations(tmp_path):
    text = (
        BASE
        + "sample: {train.lr: {loguniform: [1e-4, 1e-2]}}\nsearch: {algorithm: tpe, samples: 4}"
    )
    with pytest.raises(AblError, match="repeats must be a number with algorithm tpe"):
        load(tmp_path, text, "repeats={max: 4}")


@pytest.mark.parametrize(
    ("overrides", "key", "what"),
    [
        (["search.algorithm=tpe", "search.samples=4"], "search.algorithm", "TPE's proposals"),
    ],
)
def test_pack_refuses_what_cannot_drive_packed_trials_yet(tmp_path, overrides, key, what):
    text = BASE + "grid: {model.pe_type: [none, rope]}\nrepeats: 4\npack: 4"
    text += "\nsample: {train.lr: {loguniform: [0.0001, 0.01]}}" if "tpe" in str(overrides) else ""
    with pytest.raises(AblError) as info:
        load(tmp_path, text, *overrides)
    message = str(info.value)
    assert "\n" not in message and what in message, message
    assert message.startswith("pack: fuses") and f"({tmp_path / 'space.yaml'}, {key}, " in message


def test_pack_needs_abls_own_loop_and_a_whole_number(tmp_path):
    text = "name: t\ntrainable: tests.space.test_schema:configs\ngrid: {x: [1, 2]}\npack: 2"
    with pytest.raises(AblError, match=r"^pack: fuses trials of abl's own training loop; "):
        load(tmp_path, text)
    with pytest.raises(AblError, match=r"^pack must be >= 1; got 0 \("):
        load(tmp_path, BASE + "pack: 0")


def test_a_model_that_cannot_be_stacked_is_refused_in_one_line(tmp_path):
    with pytest.raises(AblError) as info:
        load(tmp_path, BASE + "repeats: 2\npack: 2", "model.kind=lstm")
    message = str(info.value)
    assert message.startswith("pack: model.kind lstm cannot be packed: ") and "\n" not in message
    assert message.endswith(f"set pack: 1 ({tmp_path / 'space.yaml'}, pack)")


def test_pack_cuts_each_architecture_into_even_packs(tmp_path):
    from abl.space.variants import packs

    space = load(tmp_path, BASE + "grid: {model.pe_type: [none, rope]}\nrepeats: 5\npack: 4")
    out = packs(configs(space), space.pack)
    # 5 seeds of each PE type: packs of 3 and 2 (not 4 and 1), never mixing PE types
    assert [len(p) for p in out] == [3, 2, 3, 2]
    assert [{c["model.pe_type"] for c in p} for p in out] == [
        {"none"},
        {"none"},
        {"rope"},
        {"rope"},
    ]
    assert sorted(c["seed"] for p in out[:2] for c in p) == [0, 1, 2, 3, 4]
    assert count_trials(space) == 10  # still ten trials downstream
