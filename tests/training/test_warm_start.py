"""Warm start (retraining from the champion): the run starts from the exported model's parameters,
so its first loss is the source's last loss level, far below a cold start's; a model of another
kind or other shapes is refused by name; the config names the source, so a warm run never resumes
a cold run's directory."""

import numpy as np
import pytest

from tests.training.helpers import tiny_cfg, toy_seqs
from x_reco.training.defaults import default_train_config
from x_reco.training.loop import train_ranker, train_retriever
from x_reco.training.record import run_name


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return train_retriever(toy_seqs(), tiny_cfg(num_steps=30), tmp_path_factory.mktemp("source"))


def test_a_warm_start_continues_from_the_source_parameters(source, tmp_path):
    cold = train_retriever(toy_seqs(), tiny_cfg(num_steps=3, seed=1), tmp_path / "cold")
    warm_cfg = tiny_cfg(num_steps=3, seed=1, init_checkpoint=source.checkpoint_path)
    warm = train_retriever(toy_seqs(), warm_cfg, tmp_path / "warm")
    assert warm.losses[0] < 0.8 * cold.losses[0]
    assert abs(warm.losses[0] - np.mean(source.losses[-5:])) < 0.5 * (cold.losses[0] - np.mean(source.losses[-5:]))
    assert run_name(warm_cfg, toy_seqs()) != run_name(tiny_cfg(num_steps=3, seed=1), toy_seqs())


def test_a_source_of_another_kind_or_shape_is_refused(source, tmp_path):
    with pytest.raises(ValueError, match="is a PhoenixRetriever, this run trains a ranker"):
        train_ranker(toy_seqs(), tiny_cfg(num_steps=3, init_checkpoint=source.checkpoint_path), tmp_path / "r")
    wider = tiny_cfg(num_steps=3, init_checkpoint=source.checkpoint_path, model_overrides={"emb_size": 48})
    with pytest.raises(ValueError, match="other parameter shapes"):
        train_retriever(toy_seqs(), wider, tmp_path / "w")


def test_the_default_warm_start_trains_a_third_of_the_budget():
    cold = default_train_config("synthetic", "retriever")
    warm = default_train_config("synthetic", "retriever", init_checkpoint="/champion/model")
    assert warm.num_steps == cold.num_steps // 3 and warm.init_checkpoint == "/champion/model"
    assert warm.warmup_steps < warm.num_steps and (not warm.eval_every or warm.eval_every < warm.num_steps)
