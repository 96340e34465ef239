"""The command line's overrides reach TrainConfig (model fields under ``model_overrides.``), the tuned
defaults are valid configs, and (slow, needs the RecBole wheel's MovieLens-100K) a short end-to-end
run prints every metric group."""

import copy
import importlib.util

import pytest

from x_reco.training.config import TrainConfig
from x_reco.training.defaults import TUNED
from x_reco.training.run import _parse_set, main


def test_set_overrides_and_tuned_configs_are_valid():
    before = copy.deepcopy(TUNED)
    sets = [
        "num_steps=5",
        "warmup_steps=1",
        "model_overrides.emb_size=16",
        "retrieval_loss=sampled",
        "table_learning_rate=None",
    ]
    d = _parse_set(sets, TUNED["retriever"])
    cfg = TrainConfig.from_dict(d)
    assert cfg.num_steps == 5 and cfg.model_overrides["emb_size"] == 16 and cfg.retrieval_loss == "sampled"
    assert cfg.table_learning_rate is None and cfg.model_overrides["compute_dtype"] == "float32"
    assert TUNED == before  # the tuned defaults are not mutated
    for kind in TUNED:
        TrainConfig.from_dict(TUNED[kind])


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("recbole") is None, reason="MovieLens-100K ships in the recbole wheel")
def test_cli_end_to_end_on_movielens(tmp_path):
    sets = [
        "preset=tiny",
        "num_steps=6",
        "warmup_steps=1",
        "batch_size=32",
        "checkpoint_every=0",
        "model_overrides={'compute_dtype': 'float32'}",
    ]
    report = main(["--model", "both", "--out", str(tmp_path), "--no-progress", *sum((["--set", s] for s in sets), [])])
    assert report["retriever"]["test"]["num_targets"] == 943
    assert {"favorite_auc", "click_auc"} <= set(report["ranker"]["test"])
    assert "two_stage_ndcg@10" in report["two_stage_test"] and (tmp_path / "metrics.json").exists()
