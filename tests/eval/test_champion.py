"""Champion policy: a record moves only to a strictly better finite primary metric, a champion judged
by another metric is replaced, the file is written atomically and left untouched when nothing moves."""

import json
import math

from x_reco.eval.champion import PRIMARY_METRIC, beats_champion, champion_path, promote_champion, read_champion


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
