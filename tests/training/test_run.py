"""The command line's overrides reach TrainConfig (model fields under ``model_overrides.``), the tuned
defaults are valid configs, and (slow, needs the RecBole wheel's MovieLens-100K) a short end-to-end
run prints every metric group."""

import copy
import importlib.util
import math

import pytest

from x_reco.data.registry import DEFAULT_PARTITION, TUNING_PARTITION
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
        "retrieval_positions=last",
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


def test_protocol_rows_mean_and_sample_sd_over_seeds():
    from x_reco.eval.report import protocol_markdown, protocol_rows

    def run(hr, ndcg, masked_hr):
        return {
            "retriever": {
                "hr@10": hr,
                "ndcg@10": ndcg,
                "masked_hr@10": masked_hr,
                "masked_ndcg@10": ndcg,
                "hr@10_ci_low": hr - 0.02,
                "hr@10_ci_high": hr + 0.02,
            },
            "popularity": {"hr@10": 0.05, "ndcg@10": 0.02, "masked_hr@10": 0.06, "masked_ndcg@10": 0.03},
        }

    rows = protocol_rows([run(0.10, 0.05, 0.16), run(0.11, 0.06, 0.17), run(0.12, 0.04, 0.15)])
    assert [(r["protocol"], r["model"]) for r in rows] == [
        ("unmasked", "retriever"),
        ("unmasked", "popularity"),
        ("masked", "retriever"),
        ("masked", "popularity"),
    ]
    unmasked, popularity, masked = rows[0], rows[1], rows[2]
    assert unmasked["runs"] == 3 and unmasked["hr@10"] == pytest.approx(0.11)
    assert unmasked["hr@10_sd"] == pytest.approx(0.01)  # ddof=1: sqrt((0.01² + 0 + 0.01²) / 2)
    assert unmasked["ndcg@10_sd"] == pytest.approx(0.01)
    assert unmasked["hr@10_ci_low"] == pytest.approx(0.09) and unmasked["hr@10_ci_high"] == pytest.approx(0.13)
    assert masked["hr@10"] == pytest.approx(0.16) and masked["hr@10_sd"] == pytest.approx(0.01)
    assert popularity["hr@10_sd"] == pytest.approx(0.0, abs=1e-15) and math.isnan(popularity["hr@10_ci_low"])
    table = protocol_markdown(rows)
    assert table.splitlines()[0] == "| protocol | model | HR@10 [95 % CI] | NDCG@10 [95 % CI] |"
    assert "| unmasked | retriever | 0.110 ± 0.010 [0.090, 0.130] | 0.050 ± 0.010 |" in table
    one = protocol_rows([run(0.10, 0.05, 0.16)])
    assert math.isnan(one[0]["hr@10_sd"]) and "| unmasked | retriever | 0.100 [0.080, 0.120] |" in protocol_markdown(
        one
    )


def test_seeds_train_each_seed_and_tabulate_both_protocols(tmp_path):
    """Two tiny seeds on the toy sequences through the function ``--seeds`` runs: each seed its own
    run directory and seed, the table over both with the bootstrap interval of each protocol."""
    from tests.training.helpers import toy_seqs
    from x_reco.training.run import _parser, protocols_document, run_seeds

    sets = ["preset=tiny", "num_steps=4", "warmup_steps=1", "batch_size=16", "checkpoint_every=0", "eval_every=0"]
    sets += ["select_best=False", "early_stopping_patience=0"]
    args = _parser().parse_args(["--no-progress", "--seeds", "3,4", *sum((["--set", s] for s in sets), [])])
    out = run_seeds(args, toy_seqs(), None, [3, 4], tmp_path)
    assert [r["retriever"]["config"]["seed"] for r in out["runs"]] == [3, 4]
    assert all((tmp_path / f"seed_{s}" / "metrics.json").exists() for s in (3, 4))
    test = [r["retriever"]["test"] for r in out["runs"]]
    assert test[0]["hr@10"] != test[1]["hr@10"] or test[0]["ndcg@10"] != test[1]["ndcg@10"]  # the seeds differ
    unmasked = out["protocols"][0]
    assert unmasked["ndcg@10"] == pytest.approx((test[0]["ndcg@10"] + test[1]["ndcg@10"]) / 2)
    assert unmasked["ndcg@10_sd"] == pytest.approx(abs(test[0]["ndcg@10"] - test[1]["ndcg@10"]) / math.sqrt(2))
    doc = protocols_document("toy", [3, 4], out["results"], "python -m x_reco.training.run --seeds 3,4")
    assert "over seeds 3, 4" in doc and "48 users" in doc
    assert doc.count("| masked |") == 2 and doc.count("| unmasked |") == 2 and " ± " in doc


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--seeds", "0,x"], "comma-separated integers"),
        (["--seeds", "1,1"], "distinct"),
        (["--seeds", "0,1", "--set", "seed=3"], "--seeds sets the seed"),
        (["--model", "ranker", "--out", "table.md"], "needs --model retriever or both"),
    ],
)
def test_seeds_and_table_arguments_are_checked_before_any_work(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_a_hard_negative_ranker_alone_is_refused_before_any_work(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--dataset", TUNING_PARTITION, "--model", "ranker", "--no-progress"])
    assert exc.value.code == 2 and "use --model both, or --ranker-set hard_negative_pool=0" in capsys.readouterr().err


def test_history_len_reaches_the_sequences(tmp_path):
    from x_reco.training.run import load_sequences

    seqs, window = load_sequences(DEFAULT_PARTITION, history_len=5)
    assert seqs.history_len == 5 and window is not None
    with pytest.raises(SystemExit) as exc:
        main(["--history-len", "0", "--model", "retriever", "--out", str(tmp_path), "--no-progress"])
    assert exc.value.code == 2
