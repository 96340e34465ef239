"""Issue 12, item 6: a training config out of range fails before any work, naming the field, the value
and what is allowed. Past bugs: ``--set select_best=maybe`` trained for 102 s (a non-empty string is
true), ``--set num_steps=abc`` raised a TypeError naming no field, a negative seed or a string model
width failed only inside the first step."""

import re

import pytest

from tests.training.helpers import tiny_cfg
from x_reco.training import run
from x_reco.training.defaults import TUNED, check_overrides, default_train_config, overrides_from_json


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"num_steps": -5}, "num_steps=-5 must be >= 1"),
        ({"num_steps": "abc"}, "num_steps='abc' must be an int"),
        ({"num_steps": 2.5}, "num_steps=2.5 must be an int"),
        ({"batch_size": 0}, "batch_size=0 must be >= 1"),
        ({"select_best": "maybe", "eval_every": 4}, "select_best='maybe' must be True or False"),
        ({"select_best": 1, "eval_every": 4}, "select_best=1 must be True or False"),
        ({"seed": -1}, "seed=-1 must be >= 0"),
        ({"learning_rate": float("nan")}, "learning_rate=nan must be finite"),
        ({"learning_rate": "fast"}, "learning_rate='fast' must be a number"),
        ({"end_lr_fraction": 2.0}, "end_lr_fraction=2.0 must be in [0, 1]"),
        ({"negative_window_s": -1.0}, "negative_window_s=-1.0 must be > 0"),
        ({"negative_window_s": "1h"}, "negative_window_s='1h' must be a number or None"),
        ({"selection_metric": 3}, "selection_metric=3 must be a string or None"),
        ({"table_optimizer": "sgd"}, "table_optimizer='sgd' must be one of"),
        ({"preset": "huge"}, "preset='huge': unknown preset 'huge'; expected one of"),
        ({"model_overrides": {"emb_size": "big"}}, "model_overrides.emb_size='big' must be an int"),
        ({"model_overrides": {"num_kv_heads": 3}}, "not divisible by num_kv_heads=3"),
        ({"model_overrides": "emb_size=8"}, "model_overrides='emb_size=8' must be a Mapping"),
        (
            {"select_best": True, "eval_every": 0},
            "select_best needs eval_every > 0 (the evaluations it selects from), got eval_every=0",
        ),
    ],
)
def test_train_config_names_field_value_and_allowed(bad, message):
    with pytest.raises(ValueError, match="invalid TrainConfig: .*" + re.escape(message)):
        tiny_cfg(**bad)


def test_every_error_is_reported_at_once():
    with pytest.raises(ValueError) as err:
        tiny_cfg(num_steps="abc", batch_size=0, seed=-2)
    assert all(s in str(err.value) for s in ("num_steps='abc'", "batch_size=0", "seed=-2"))


def test_valid_configs_still_construct():
    assert tiny_cfg(num_steps=3, warmup_steps=0, learning_rate=1, select_best=True, eval_every=1).learning_rate == 1
    for kind in TUNED:
        for partition in ("synthetic", "movielens-100k"):
            default_train_config(partition, kind)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"num_steps": -5}, "num_steps=-5 must be >= 1"),
        ({"batch_size": 0}, "batch_size=0 must be >= 1"),
        ({"preset": "huge"}, "preset='huge': unknown preset"),
        ({"select_best": "maybe"}, "select_best='maybe' must be True or False"),
        ({"learning_rat": 1e-3}, "unknown TrainConfig keys: ['learning_rat']"),
        ({"model_overrides": {"emb_sise": 8}}, "unknown PhoenixConfig keys"),
    ],
)
def test_partial_overrides_are_checked_on_their_own(overrides, message):
    with pytest.raises(ValueError, match="invalid TrainConfig overrides: .*" + re.escape(message)):
        check_overrides(overrides)


def test_partial_overrides_leave_relations_to_the_whole_config():
    check_overrides({"num_steps": 50, "select_best": True})  # warmup and eval_every come from the partition
    check_overrides({})


@pytest.mark.parametrize("text", ["{batch_size: 0}", "[1, 2]", '"x"'])
def test_overrides_json_must_be_an_object(text):
    with pytest.raises(ValueError, match="overrides_json="):
        overrides_from_json(text)
    assert overrides_from_json("") == {} and overrides_from_json(' {"seed": 3} ') == {"seed": 3}


@pytest.mark.parametrize(
    "pair, message",
    [
        ("num_steps=abc", "num_steps='abc' must be an int"),
        ("num_steps=-5", "num_steps=-5 must be >= 1"),
        ("select_best=maybe", "select_best='maybe' must be True or False"),
        ("batch_size=0", "batch_size=0 must be >= 1"),
        ("preset=huge", "preset='huge': unknown preset"),
        ("num_steps", "--set 'num_steps': expected KEY=VALUE"),
        ("model_overrides.emb_size=wide", "model_overrides.emb_size='wide' must be an int"),
        ("learnin_rate=0.1", "unknown TrainConfig keys: ['learnin_rate']"),
    ],
)
def test_cli_set_fails_before_loading_data(pair, message, monkeypatch, capsys):
    def no_data(*args, **kwargs):
        raise AssertionError("the data was loaded before the config was checked")

    monkeypatch.setattr(run, "load_sequences", no_data)
    with pytest.raises(SystemExit) as exit_:
        run.main(["--dataset", "synthetic", "--model", "both", "--no-progress", "--set", pair])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_set_reads_words_and_literals():
    d = run._parse_set(
        ["select_best=false", "negative_window_s=none", "seed=7", "retrieval_loss=full"], TUNED["ranker"]
    )
    assert (d["select_best"], d["negative_window_s"], d["seed"], d["retrieval_loss"]) == (False, None, 7, "full")
