"""``WorldOracle`` is the world's own engagement model (candidate-pipeline spec §15.3): rebuilt from the
manifest alone, it gives every impression of the tiny world the π̃ the generator stored in
``truth_impressions``, so true utilities of served feeds are computed with the world's model, not a copy.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.pipeline.test_feed import _synthetic  # the tiny world, generated once for the pipeline tests too
from x_reco.data.synthetic.calibration import Calibration
from x_reco.data.synthetic.config import ARCHETYPES, TOPICS
from x_reco.data.synthetic.oracle import PROB_COLUMNS, WorldOracle, base_logits_from_manifest
from x_reco.data.synthetic.targets import DISCRETE, LATENT_ACTIONS


@pytest.fixture(scope="module")
def world():
    raw = _synthetic()[0]
    manifest = json.loads(json.dumps(raw.manifest))  # as a store keeps it
    return raw, WorldOracle.from_manifest(manifest)


def _impressions(raw):
    imp = raw.interactions[["impression_id", "user_id", "item_id", "position"]]
    return imp.merge(raw.truth["impressions"], on="impression_id", validate="1:1")


def test_oracle_gives_every_impression_the_worlds_truth_probabilities(world):
    raw, oracle = world
    imp = _impressions(raw)
    assert len(imp) > 1000 and imp["followed"].any() and not imp["followed"].all()
    args = imp["user_id"], imp["item_id"], imp["followed"].to_numpy(), imp["position"].to_numpy()
    got = oracle.probs(*args)
    want = imp[[f"p_{c}" for c in PROB_COLUMNS]].to_numpy(np.float64)  # stored as float32
    assert got.shape == (len(imp), len(DISCRETE) + 1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(got.astype(np.float32), want.astype(np.float32))  # the same f32 bits, in fact
    # The inputs matter: another follow state or slot gives other probabilities than the table's.
    flipped = oracle.probs(args[0], args[1], ~args[2], args[3])
    later = oracle.probs(args[0], args[1], args[2], args[3] + 5)
    fav = PROB_COLUMNS.index("favorite")
    assert np.all(np.abs(flipped[:, fav] - want[:, fav]) > 1e-4)
    assert np.all(later[:, fav] < got[:, fav])


def test_rebuilt_latent_state_equals_the_truth_tables(world):
    raw, oracle = world
    users, posts = raw.truth["users"], raw.truth["posts"]
    u = np.array([oracle.user_index[x] for x in users["user_id"]])
    p = np.array([oracle.post_index[x] for x in posts["post_id"]])
    np.testing.assert_array_equal(np.array(ARCHETYPES)[oracle.users.archetype[u]], users["archetype"])
    np.testing.assert_array_equal(oracle.users.b_u[u], users["b_u"])
    np.testing.assert_array_equal(oracle.users.theta[u], users[[f"theta_{t}" for t in TOPICS]].to_numpy())
    np.testing.assert_array_equal(np.array(TOPICS)[oracle.posts.topic[p]], posts["topic"])
    np.testing.assert_array_equal(oracle.posts.quality[p], posts["q_p"])


def test_base_logits_round_trip_the_manifest_exactly():
    rng = np.random.default_rng(7)
    shape = (len(ARCHETYPES), len(TOPICS))
    zeros = np.zeros((*shape, len(DISCRETE)))
    cal = Calibration(rng.normal(0, 3, (*shape, len(LATENT_ACTIONS))), zeros, zeros, zeros, np.zeros(shape))
    stored = json.loads(json.dumps(cal.to_manifest()))
    np.testing.assert_array_equal(base_logits_from_manifest(stored), cal.base_logits)


def test_unknown_ids_and_a_foreign_seed_are_refused(world):
    raw, oracle = world
    with pytest.raises(KeyError, match="p-nope"):
        oracle.probs(["u0001"], ["p-nope"], [False], [0])
    assert oracle.probs([], [], np.zeros(0, bool), np.zeros(0, int)).shape == (0, len(PROB_COLUMNS))
    bad = json.loads(json.dumps(raw.manifest))
    bad["seeds"]["root"] = 12345
    with pytest.raises(ValueError, match="seeds.root"):
        WorldOracle.from_manifest(bad)
