"""`x-reco feed` on a storage root that real Dagster runs wrote (§18 item 1): the champion pair is loaded,
the JSON names their param versions, the September sync and aug-2026, two runs are byte-identical,
and bad input exits with the documented codes (2 arguments or user, 3 checkpoint or data)."""

import contextlib
import io
import json
import shutil

import pytest
from flax import nnx

from resources.io_managers import read_frame
from tests.training.helpers import tiny_cfg, toy_seqs
from x_reco import cli
from x_reco.eval.champion import champion_path, read_champion
from x_reco.eval.ranker import retrieval_weight_of
from x_reco.models.checkpoint import read_metadata, save_checkpoint
from x_reco.models.ranker import PhoenixRanker
from x_reco.training.config import model_config_for


@pytest.fixture(scope="module")
def root(champion_root):
    """The session's storage root of real Dagster runs with a champion pair (tests/conftest.py)."""
    return champion_root


def _feed(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["feed", *args])
    return code, out.getvalue(), err.getvalue()


def _user(root) -> str:
    events = read_frame(str(root / "warehouse.duckdb"), "synthetic", "engagement_events")
    return str(events[events["split"] == "test"]["user_id"].sort_values().iloc[0])


def test_feed_json_loads_the_champion_and_is_byte_identical(root):
    user = _user(root)
    args = ("--dataset", "synthetic", "--user", user, "--json", "--storage", str(root))
    code, first, _ = _feed(*args)
    assert code == 0
    assert _feed(*args)[1] == first
    report = json.loads(first)
    champion = read_champion(champion_path(root, "synthetic"))
    for kind in ("retriever", "ranker"):
        assert report["checkpoints"][kind] == read_metadata(champion[kind])["param_version"]
    # the feed blends in the retriever's score at the weight the champion ranker's validation fit
    ranker_meta = read_metadata(champion["ranker"])
    assert "retrieval_weight" in ranker_meta["extra"]["val_metrics"]  # validated on the two stages it serves in
    assert report["retrieval_weight"] == retrieval_weight_of(ranker_meta)
    code, own, _ = _feed(*args, "--retrieval-weight", "0")  # the ranker's own order, on request
    assert code == 0 and json.loads(own)["retrieval_weight"] == 0.0
    assert all(p["two_tower"] is not None for p in report["served"]) or report["retrieval_weight"] == 0
    assert report["weights"] == "sync-2026-09-24@2026-09-24" and report["rules"] == "aug-2026"
    eligible = report["counts"]["scored"] - sum(
        f["n_removed"] for f in report["funnel"] if f["stage"] in ("selector", "post_selection_filter")
    )
    assert len(report["served"]) == min(35, eligible)
    assert all("latency_us" not in f for f in report["funnel"])  # no timings unless asked
    assert all("attribution" not in p for p in report["served"])  # nor history attribution


def test_feed_table_why_and_compare(root):
    user = _user(root)
    code, text, _ = _feed("--user", user, "--storage", str(root), "--timings", "--compare", "engagement-only")
    assert code == 0 and "For You feed" in text and "funnel:" in text and "jaccard@35" in text
    served = json.loads(_feed("--user", user, "--json", "--storage", str(root))[1])["served"][0]["post_id"]
    code, out, _ = _feed("--user", user, "--storage", str(root), "--json", "--why", served, "p999999", "--attribute")
    why = json.loads(out)["why"]
    assert why[served]["state"] == "served" and why["p999999"]["state"] == "never_retrieved"
    assert all(0 < len(p["attribution"]) <= 3 for p in json.loads(out)["served"])


def test_feed_bad_input_exit_codes(root, tmp_path):
    user = _user(root)
    code, _, err = _feed("--user", "u-nobody", "--storage", str(root))
    assert code == 2 and "u-nobody" in err
    code, _, err = _feed("--user", user, "--weights", "nope", "--storage", str(root))
    assert code == 2 and "unknown weight set" in err
    code, _, err = _feed("--user", user, "--at", "5", "--storage", str(root))
    assert code == 2 and "outside" in err
    code, _, err = _feed("--user", user, "--retrieval-weight", "1.5", "--storage", str(root))
    assert code == 2 and "retrieval_weight 1.5 must be in [0, 1]" in err
    code, _, err = _feed("--user", user, "--storage", str(tmp_path))
    assert code == 3 and "make demo" in err
    broken = tmp_path / "broken"
    shutil.copytree(root, broken)
    champion = champion_path(broken, "synthetic")
    record = json.loads(champion.read_text())
    record["ranker"] = str(tmp_path / "no-such-checkpoint")
    champion.write_text(json.dumps(record))
    code, _, err = _feed("--user", user, "--storage", str(broken))
    assert code == 3 and "no-such-checkpoint" in err


def test_a_checkpoint_of_another_partition_is_refused(root, tmp_path):
    """A champion trained under another dataset's HashSpec exits 3 naming the mismatch."""
    other = PhoenixRanker(model_config_for(tiny_cfg(), toy_seqs()), rngs=nnx.Rngs(0))  # movielens-100k hashes
    save_checkpoint(tmp_path / "ml-ranker", other)
    moved = tmp_path / "moved"
    shutil.copytree(root, moved)
    champion = champion_path(moved, "synthetic")
    record = json.loads(champion.read_text())
    record["ranker"] = str(tmp_path / "ml-ranker")
    champion.write_text(json.dumps(record))
    code, _, err = _feed("--user", _user(root), "--storage", str(moved))
    assert code == 3 and "does not match synthetic's data" in err
