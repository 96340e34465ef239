"""Champion policy: a record moves only to a strictly better finite primary metric, a champion judged
by another metric is replaced, the file is written atomically and left untouched when nothing moves."""

import json
import math
import os

import pytest

from x_reco.eval.champion import (
    PRIMARY_METRIC,
    beats_champion,
    champion_history,
    champion_path,
    promote_champion,
    prune_checkpoints,
    read_champion,
    rollback_champion,
)


def test_first_promotion_then_only_strictly_better(tmp_path):
    path = champion_path(tmp_path, "synthetic")
    assert path == tmp_path / "champions" / "synthetic.json" and read_champion(path) is None
    first = promote_champion(path, 0.2, "r1", "k1", now=1.0)
    assert first == {
        "promoted": True,
        "metric_name": PRIMARY_METRIC,
        "metric": 0.2,
        "retriever": "r1",
        "ranker": "k1",
        "promoted_at": 1.0,
        "evaluated_on": {},
    }
    stored = path.read_text()
    for metric in (0.1, 0.2, math.nan):
        kept = promote_champion(path, metric, "r2", "k2", now=2.0)
        assert not kept["promoted"] and kept["retriever"] == "r1" and path.read_text() == stored
    assert promote_champion(path, 0.3, "r3", "k3", now=3.0)["promoted"]
    assert read_champion(path)["retriever"] == "r3" and not list(path.parent.glob(".*tmp"))


def test_nan_never_becomes_champion(tmp_path):
    path = champion_path(tmp_path, "synthetic")
    out = promote_champion(path, math.nan, "r", "k")
    assert not out["promoted"] and math.isnan(out["metric"]) and not path.exists()


def test_other_metric_is_replaced(tmp_path):
    path = champion_path(tmp_path, "synthetic")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"metric_name": "hr@10", "metric": 0.9, "retriever": "a", "ranker": "a"}))
    assert beats_champion(0.01, read_champion(path))
    assert promote_champion(path, 0.01, "b", "b")["promoted"] and read_champion(path)["metric_name"] == PRIMARY_METRIC


def test_the_champion_is_judged_by_its_score_on_the_same_evaluation(tmp_path):
    """Its recorded score came from an earlier test day: a candidate above the recorded score but
    below the champion's score on today's split is not promoted, and the reverse is."""
    path = champion_path(tmp_path, "synthetic")
    promote_champion(path, 0.30, "r1", "k1", now=1.0)
    lost = promote_champion(path, 0.35, "r2", "k2", champion_metric=0.40)
    assert not lost["promoted"] and lost["champion_metric"] == 0.40 and read_champion(path)["retriever"] == "r1"
    won = promote_champion(path, 0.25, "r3", "k3", champion_metric=0.20, evaluated_on={"clock_day": 4})
    assert won["promoted"] and read_champion(path)["evaluated_on"] == {"clock_day": 4}


def _run(root, kind, name, mtime):
    model = root / kind / name / "model"
    model.mkdir(parents=True)
    (model / "weights").write_text(name)
    os.utime(root / kind / name, (mtime, mtime))
    return str(model)


def test_rollback_restores_the_replaced_champion_in_one_step(tmp_path):
    path = champion_path(tmp_path, "synthetic")
    with pytest.raises(ValueError, match="no earlier champion"):
        rollback_champion(path)
    first = {k: _run(tmp_path, k, "run1", 1) for k in ("retriever", "ranker")}
    second = {k: _run(tmp_path, k, "run2", 2) for k in ("retriever", "ranker")}
    promote_champion(path, 0.2, first["retriever"], first["ranker"])
    promote_champion(path, 0.3, second["retriever"], second["ranker"])
    assert [h["retriever"] for h in champion_history(path)] == [first["retriever"]]
    assert rollback_champion(path)["retriever"] == first["retriever"]
    assert read_champion(path)["retriever"] == first["retriever"] and champion_history(path) == []


def test_retention_keeps_the_champion_the_one_before_and_the_newest_runs(tmp_path):
    runs = {n: {k: _run(tmp_path, k, f"run{n}", n) for k in ("retriever", "ranker")} for n in range(1, 7)}
    path = champion_path(tmp_path, "synthetic")
    promote_champion(path, 0.2, runs[1]["retriever"], runs[1]["ranker"])  # old, rolled back to if needed
    promote_champion(path, 0.3, runs[2]["retriever"], runs[2]["ranker"])  # the champion
    deleted = prune_checkpoints([tmp_path / "retriever", tmp_path / "ranker"], path, keep_last=2)
    left = sorted(d.name for d in (tmp_path / "retriever").iterdir())
    assert left == ["run1", "run2", "run5", "run6"] and len(deleted) == 4
    assert rollback_champion(path)["retriever"] == runs[1]["retriever"]  # still restorable
    with pytest.raises(ValueError, match="keep_last"):
        prune_checkpoints([tmp_path / "retriever"], path, keep_last=0)


def test_the_cli_shows_the_history_and_rolls_back_in_one_command(tmp_path, capsys):
    from x_reco.cli import main

    path = champion_path(tmp_path, "synthetic")
    assert main(["champion", "--storage", str(tmp_path)]) == 1 and "no champion yet" in capsys.readouterr().out
    first = {k: _run(tmp_path, k, "run1", 1) for k in ("retriever", "ranker")}
    promote_champion(path, 0.2, first["retriever"], first["ranker"])
    promote_champion(path, 0.3, "r2", "k2")
    assert main(["champion", "--storage", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "champion  masked_ndcg@10 0.3000" in out and "before -1  masked_ndcg@10 0.2000" in out
    assert main(["champion", "--storage", str(tmp_path), "--rollback"]) == 0
    assert read_champion(path)["retriever"] == first["retriever"]
    assert main(["champion", "--storage", str(tmp_path), "--rollback"]) == 1  # nothing earlier now
