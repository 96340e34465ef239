"""Issue 12, item 6: every Dagster run config is checked when it is built, before the step does any
work, and the error names the field, the value and what is allowed. Past bugs: a negative
``num_steps`` was silently ignored (the default 300 steps ran); ``batch_size: 0`` and an unknown
preset in ``overrides_json`` failed only once training started."""

import json

import dagster as dg
import pydantic
import pytest

from assets.data import RawDataConfig, SequenceBuildConfig
from assets.inference import BenchmarkConfig
from assets.models import EvaluationConfig, ModelTrainConfig
from assets.replay import ReplayAssetConfig
from assets.research import ResearchConfig
from assets.serving import FeedAuditConfig, ServedFeedsConfig, ServingModelConfig
from assets.stream import WorldDayConfig

BAD = [
    (ModelTrainConfig, {"num_steps": -5}, "num_steps=-5 must be >= 1, or empty for the partition's default"),
    (ModelTrainConfig, {"overrides_json": '{"batch_size": 0}'}, "batch_size=0 must be >= 1"),
    (ModelTrainConfig, {"overrides_json": '{"preset": "huge"}'}, "preset='huge': unknown preset"),
    (ModelTrainConfig, {"overrides_json": '{"select_best": "maybe"}'}, "select_best='maybe' must be True or False"),
    (ModelTrainConfig, {"overrides_json": '{"num_steps": "abc"}'}, "num_steps='abc' must be an int"),
    (ModelTrainConfig, {"overrides_json": "{batch_size: 0}"}, "is not JSON"),
    (ModelTrainConfig, {"seed": -3}, "seed=-3 must be >= 0"),
    (RawDataConfig, {"synthetic_size": "huge"}, "unknown world size 'huge'"),
    (RawDataConfig, {"synthetic_seed": -2}, "synthetic_seed"),
    (SequenceBuildConfig, {"history_len": 0}, "history_len"),
    (SequenceBuildConfig, {"vocab_size": 1}, "vocab_size"),
    (BenchmarkConfig, {"grid": "huge"}, "unknown grid 'huge'"),
    (BenchmarkConfig, {"presets": ["xl"]}, "presets=['xl']: unknown ['xl']"),
    (BenchmarkConfig, {"repeats": 0}, "repeats"),
    (BenchmarkConfig, {"calls": 0}, "calls"),
    (BenchmarkConfig, {"users": -4}, "users"),
    (ResearchConfig, {"protocols": ["preprnt"]}, "unknown protocols ['preprnt']"),
    (ResearchConfig, {"protocols": []}, "protocols=[] must name at least one"),
    (ResearchConfig, {"scale": "big"}, "scale='big' must be one of"),
    (ServingModelConfig, {"variant": "int4"}, "variant='int4' must be one of"),
    (ServingModelConfig, {"agreement_users": 0}, "agreement_users"),
    (ServedFeedsConfig, {"num_users": 0}, "num_users"),
    (ServedFeedsConfig, {"rules": "dec-2026"}, "unknown rule set 'dec-2026'"),
    (ServedFeedsConfig, {"weights": "publshed"}, "unknown weight set 'publshed'"),
    (FeedAuditConfig, {"weight_sets": ["sync-1999"]}, "unknown weight set 'sync-1999'"),
    (FeedAuditConfig, {"n_boot": 0}, "n_boot"),
    (ReplayAssetConfig, {"days": 0}, "days"),
    (ReplayAssetConfig, {"users": -1}, "users"),
    (ReplayAssetConfig, {"users": 0}, "users"),  # unset (None) means every user; 0 no longer does
    (ReplayAssetConfig, {"weight_sets": ["world", "wrld"]}, "unknown weight set 'wrld'"),
    (ReplayAssetConfig, {"weight_sets": ["world", "world"]}, "distinct weight sets"),
    (ReplayAssetConfig, {"rules": "dec-2026"}, "unknown rule set 'dec-2026'"),
]


@pytest.mark.parametrize("cls, fields, message", BAD, ids=lambda v: getattr(v, "__name__", None))
def test_bad_config_is_rejected_when_built(cls, fields, message):
    with pytest.raises(pydantic.ValidationError, match=message.replace("[", r"\[").replace("(", r"\(")):
        cls(**fields)


@pytest.mark.parametrize("cls", sorted({c for c, _, _ in BAD}, key=lambda c: c.__name__))
def test_defaults_are_valid(cls):
    cls()


DESCRIBED = [
    BenchmarkConfig,
    ResearchConfig,
    ServingModelConfig,
    ServedFeedsConfig,
    FeedAuditConfig,
    ReplayAssetConfig,
    RawDataConfig,
    SequenceBuildConfig,
    ModelTrainConfig,
    EvaluationConfig,
    WorldDayConfig,
]


@pytest.mark.parametrize("cls", DESCRIBED, ids=lambda c: c.__name__)
def test_every_field_is_described_on_the_launch_form(cls):
    """The Dagster launchpad shows each field's description: none of these may be left blank."""
    fields = cls.to_fields_dict()
    assert set(fields) == set(cls.model_fields)
    assert not [name for name, field in fields.items() if not field.description]


def test_unset_fields_keep_their_default_behaviour():
    from assets.inference import bench_config

    assert FeedAuditConfig().weight_sets is None and ReplayAssetConfig().users is None
    demo = bench_config(BenchmarkConfig(), "demo", None, None)
    assert demo.presets == ("oss-mini",) and demo.calls == 20
    assert bench_config(BenchmarkConfig(calls=7), "issue", None, None).calls == 7


def test_valid_overrides_pass():
    tiny = {"model_overrides": {"emb_size": 16, "key_size": 8, "num_q_heads": 2, "num_kv_heads": 1}, "batch_size": 32}
    ModelTrainConfig(num_steps=12, overrides_json=json.dumps(tiny))
    ModelTrainConfig(overrides_json='{"num_steps": 50, "select_best": true}')  # eval_every: the partition's


def test_materialize_fails_before_the_step_body_runs():
    ran = []

    @dg.asset
    def probe(config: ModelTrainConfig):
        ran.append(config)

    result = dg.materialize([probe], run_config={"ops": {"probe": {"config": {"num_steps": -5}}}}, raise_on_error=False)
    assert not result.success and ran == []
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "num_steps=-5 must be >= 1, or empty for the partition's default" in str(failure)
