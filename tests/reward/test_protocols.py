"""Protocol and scale resolution of the research assets, and one analysis run per protocol: tables
concatenated with the user's protocol name, figures keyed by protocol, the deviation register on
request; unknown names are errors."""

import pytest

from x_reco import reward as R
from x_reco.data.item_features import synthetic_content_pool
from x_reco.reward.protocols import is_smoke, pairs_config, resolve_protocols, run_analysis


def test_scale_and_protocols():
    assert is_smoke("auto", "synthetic") and not is_smoke("auto", "movielens-100k")
    assert is_smoke("smoke", "movielens-100k") and not is_smoke("full", "synthetic")
    assert pairs_config("synthetic") == R.PairsConfig.smoke() and pairs_config("movielens-1m") == R.PairsConfig()
    assert resolve_protocols(["corrected", "preprint"]) == [("corrected", "corrected"), ("preprint", "parity")]
    with pytest.raises(ValueError, match="scale"):
        is_smoke("huge", "synthetic")
    with pytest.raises(ValueError, match="unknown protocols"):
        resolve_protocols(["preprint", "other"])


def test_run_analysis_per_protocol():
    feats = synthetic_content_pool()
    weights = R.stakeholder_utilities(None, feats, R.StakeholderConfig.smoke()).tables["stakeholder_weights"]
    out = run_analysis("bt_reward_models", feats, weights, partition="synthetic", with_deviations=True)
    assert set(out.tables["bt_runs"]["protocol"]) == {"preprint", "corrected"}
    assert len(out.tables["deviations"]) >= 10
    assert set(out.tables["bt_runs"].query("protocol == 'corrected'")["mode"]) > {"parity"}
    with pytest.raises(ValueError, match="unknown analysis"):
        run_analysis("audit", feats, weights, partition="synthetic")
