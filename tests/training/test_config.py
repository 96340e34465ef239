"""TrainConfig contract: unknown keys and bad values are errors at construction, and the model
config takes hash counts and table rows from the data's HashSpec (a contradicting override raises,
because trained tables mean something only under the hash functions that produced them)."""

import pytest

from tests.training.helpers import tiny_cfg, toy_seqs
from x_reco.features.hashing import HashSpec
from x_reco.training.config import TrainConfig, model_config_for


def test_from_dict_round_trip_and_unknown_keys():
    cfg = tiny_cfg(seed=7)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown TrainConfig keys"):
        TrainConfig.from_dict({**cfg.to_dict(), "learning_rat": 1e-3})


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"warmup_steps": 12}, "warmup_steps"),
        ({"temperature": 0.0}, "temperature"),
        ({"retrieval_loss": "nce"}, "retrieval_loss"),
        ({"model_overrides": {"emb_sise": 8}}, "unknown PhoenixConfig keys"),
        ({"preset": "huge"}, "unknown preset"),
    ],
)
def test_invalid_values_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        tiny_cfg(**bad)


def test_model_config_takes_hash_spec_from_data():
    seqs = toy_seqs(vocab_size=1009)
    spec = seqs.hash_spec
    mcfg = model_config_for(tiny_cfg(), seqs)
    assert mcfg.hash_spec == spec
    assert mcfg.vocab_sizes == (1009, 1009, 1009) and mcfg.num_hashes == (2, 2, 2)
    assert (mcfg.history_len, mcfg.candidate_len) == (7, 5)
    assert mcfg.emb_size == 32 and mcfg.compute_dtype == "float32"  # preset + overrides kept


def test_contradicting_hash_override_raises():
    seqs = toy_seqs()
    with pytest.raises(ValueError, match="contradict"):
        model_config_for(tiny_cfg(model_overrides={"post_vocab_size": 211}), seqs)
    other = HashSpec(salt="other", namespace="movielens-100k", vocab_sizes=(1009,) * 3)
    with pytest.raises(ValueError, match="HashSpec mismatch"):
        model_config_for(tiny_cfg(model_overrides={"hash_spec": other.to_dict()}), seqs)
    same = seqs.hash_spec
    assert model_config_for(tiny_cfg(model_overrides={"hash_spec": same.to_dict(), "post_vocab_size": 1009}), seqs)


def test_softmax_switch_by_catalogue_size():
    cfg = tiny_cfg(full_softmax_max_items=100)
    assert cfg.use_full_softmax(100) and not cfg.use_full_softmax(101)
    assert tiny_cfg(retrieval_loss="sampled").use_full_softmax(10) is False
    assert tiny_cfg(retrieval_loss="full").use_full_softmax(10**9) is True


def test_partition_defaults_window_and_selection():
    from x_reco.training.defaults import TUNED, catalogue_window_s, default_train_config

    assert catalogue_window_s({"config": {"recency_hours": 48.0}}) == 48 * 3600  # a generated world
    assert catalogue_window_s({"counts": {"interactions": 100_000}, "ts_min": 0}) is None  # a real source
    assert catalogue_window_s({"config": {"seed": 3}}) is None
    syn = default_train_config("synthetic", "retriever", catalogue_window_s=48 * 3600)
    assert syn.negative_window_s == 48 * 3600 and syn.select_best and syn.eval_every == 50 and syn.num_steps == 300
    ranker = default_train_config("synthetic", "ranker", catalogue_window_s=48 * 3600)
    # the ranker's hard negatives and its two-stage validation retrieve from the same window
    assert ranker.negative_window_s == 48 * 3600 and ranker.select_best
    ml = default_train_config("movielens-100k", "retriever")
    assert ml == TrainConfig.from_dict(TUNED["retriever"]) and ml.select_best and ml.early_stopping_patience == 3
    assert ml.retrieval_positions == "all" and ml.selection_metric == "ndcg@10"  # causal, chosen on unmasked val
    assert default_train_config("synthetic", "retriever", num_steps=400).num_steps == 400
