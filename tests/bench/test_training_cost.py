"""The training-cost benchmark (issue 10 item 5): one short run per model kind gives steady-state
examples/s, the examples of one pass over the training split (what each trainer draws from) and the
model's width and parameter count; the CLI writes the JSON and the markdown table atomically."""

import json

import pytest

from tests.training.helpers import tiny_cfg, toy_seqs
from x_reco.bench import training
from x_reco.data.examples import Split


def test_rows_carry_throughput_pass_time_and_width():
    seqs = toy_seqs()
    cfgs = {k: tiny_cfg(num_steps=4, checkpoint_every=0) for k in training.TRAINERS}
    cfgs["ranker"] = cfgs["ranker"].replace(hard_negative_pool=12)  # drawn from the retriever trained first
    rows = training.training_cost(seqs, cfgs)
    assert [r["kind"] for r in rows] == ["retriever", "ranker"]
    for r in rows:
        assert r["examples_per_s"] > 0 and r["weights"] > 1000 and r["emb_size"] and r["num_layers"]
        assert r["s_per_pass"] == pytest.approx(r["train_examples"] / r["examples_per_s"])
    assert rows[0]["train_examples"] == len(seqs.retrieval_pairs(Split.TRAIN)[0])
    assert rows[1]["train_examples"] == len(seqs.rows(Split.TRAIN))
    text = training.markdown(rows, "toy", "cmd")
    assert text.count("\n| ") == 3 and "s per pass" in text


def test_the_tuned_configs_are_cut_short_without_evaluation():
    cfgs = training.tuned_configs("movielens-100k", 20, None)
    assert {c.num_steps for c in cfgs.values()} == {20}
    assert all(c.eval_every == 0 and c.checkpoint_every == 0 and not c.select_best for c in cfgs.values())
    assert cfgs["retriever"].model_overrides["emb_size"] == 32  # the tuned widths
    with pytest.raises(SystemExit):
        training.main(["--out", "x", "--steps", "2"])
    assert json.dumps(cfgs["ranker"].to_dict())
