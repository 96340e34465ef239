"""Engagement sequences contract (datasets spec §11-13): history strictly precedes the request,
oldest->newest, padded at the end; ties broken by source line; negatives never interacted with;
candidate order a seeded shuffle (never "positive in slot 0"); the build is deterministic; and the
GX suite catches structural damage."""

import numpy as np
import pandas as pd
import pytest

from x_reco.common.actions import ACTION_INDEX, ACTIONS
from x_reco.data import quality
from x_reco.data.events import build_events
from x_reco.data.examples import EngagementSequences, Split
from x_reco.data.sequences import SequenceConfig, build_sequences
from x_reco.data.tables import RawTables

S, C = 4, 5


def _ml_raw(n_users=5, n_items=31, per_user=9, seed=3) -> RawTables:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(1, n_users + 1):
        items = rng.choice(np.arange(1, n_items + 1), size=per_user, replace=False)
        ts = np.sort(rng.integers(1_000, 1_010, size=per_user))  # many equal timestamps
        for i, t in zip(items, ts):
            rows.append((str(u), str(i), int(t), float(rng.integers(1, 6))))
    order = rng.permutation(len(rows))  # source line order differs from time order
    df = pd.DataFrame([rows[k] for k in order], columns=["user_id", "item_id", "ts", "rating"])
    df["label"] = pd.array([pd.NA] * len(df), dtype="Int8")
    df["impression_id"] = None
    df["src_file"] = "u.data"
    df["src_row"] = np.arange(len(df), dtype=np.int64)
    items = pd.DataFrame({"item_id": [str(i) for i in range(1, n_items + 1)]})
    users = pd.DataFrame({"user_id": [str(u) for u in range(1, n_users + 1)]})
    return RawTables("movielens-100k", df, items, users)


@pytest.fixture(scope="module")
def ml():
    raw = _ml_raw()
    events = build_events(raw)
    seqs = build_sequences(events, raw.items, "movielens-100k", SequenceConfig(history_len=S, candidate_len=C))
    return raw, events, seqs


def test_rating_mapping_and_leave_last_out(ml):
    raw, events, _ = ml
    r = events.merge(raw.interactions[["user_id", "item_id", "rating"]], on=["user_id", "item_id"])
    assert (r["click"] == 1).all() and (r["dwell"] == 1).all()
    assert ((r["favorite"] == 1) == (r["rating"] >= 4)).all()
    assert ((r["not_interested"] == 1) == (r["rating"] <= 2)).all()
    assert (events[["reply", "repost", "block_author"]] == 0).all().all()  # unobserved columns
    for _, g in events.groupby("user_id"):
        keys = list(zip(g["ts"], g["src_row"]))
        assert keys == sorted(keys)
        assert list(g["split"].iloc[-2:]) == ["val", "test"] and (g["split"].iloc[:-2] == "train").all()


def test_history_strictly_before_request_and_padded_at_end(ml):
    _, events, seqs = ml
    item_ids, ex, hist, cand = seqs.catalogue.item_ids, seqs.examples, seqs.history, seqs.candidates
    for e in range(seqs.num_examples):
        user = seqs.catalogue.user_ids[ex.user_idx[e]]
        g = events[events["user_id"] == user].reset_index(drop=True)
        target = item_ids[cand.item_idx[e][cand.item_idx[e] >= 0]]
        pos = int(
            np.flatnonzero(
                g["item_id"].isin(target) & (g["split"].map({"train": 0, "val": 1, "test": 2}) == ex.split[e])
            )[0]
        )
        expected = list(g["item_id"].iloc[max(0, pos - S) : pos])
        L = hist.length[e]
        got = list(item_ids[hist.item_idx[e][:L]])
        assert got == expected
        assert (hist.item_idx[e][L:] == -1).all()
        assert (hist.post_hashes[e][L:] == 0).all() and (hist.post_hashes[e][:L] > 0).all()


def test_candidates_negatives_and_shuffle(ml):
    _, events, seqs = ml
    train = seqs.split_view(Split.TRAIN)
    seen = events.groupby("user_id")["item_id"].apply(set)
    slot_of_positive = []
    for e in range(train.num_examples):
        user = train.catalogue.user_ids[train.examples.user_idx[e]]
        cands = train.candidates.item_idx[e]
        assert (cands >= 0).all() and len(set(cands)) <= C
        sampled = train.candidates.sampled[e]
        assert sampled.sum() == C - 1
        assert not set(train.catalogue.item_ids[cands[sampled]]) & seen[user]
        slot_of_positive.append(int(np.flatnonzero(~sampled)[0]))
    assert len(set(slot_of_positive)) > 1  # never "positive always in slot 0"
    for split in (Split.VAL, Split.TEST):
        v = seqs.split_view(split)
        assert ((v.candidates.item_idx >= 0).sum(axis=1) == 1).all()
        assert (v.candidates.item_idx[:, 0] >= 0).all()
        assert v.num_examples == events["user_id"].nunique()
        assert (v.examples.split == split).all()


def test_deterministic(ml):
    raw, events, seqs = ml
    again = build_sequences(
        build_events(raw), raw.items, "movielens-100k", SequenceConfig(history_len=S, candidate_len=C)
    ).to_arrays()
    first = seqs.to_arrays()
    assert first.keys() == again.keys()
    for k in first:
        assert first[k].dtype == again[k].dtype, k
        assert first[k].tobytes() == again[k].tobytes(), k  # byte-identical, NaNs included
    other_seed = build_sequences(
        events, raw.items, "movielens-100k", SequenceConfig(history_len=S, candidate_len=C, seed=1)
    )
    assert not np.array_equal(other_seed.candidates.item_idx, seqs.candidates.item_idx)


def test_quality_suite_passes_then_catches_damage(ml):
    _, _, seqs = ml
    exps = quality.sequence_expectations(S, 100_000, per_event=True)
    ok = quality.run_suite(quality.sequence_frame(seqs), "seq", exps)
    assert ok.success, ok.failed
    bad = {k: v.copy() for k, v in seqs.to_arrays().items()}
    row = int(np.flatnonzero(bad["hist_len"] >= 2)[0])
    bad["hist_post_hashes"][row, 0] = 0  # a padded slot before a valid one
    result = quality.run_suite(quality.sequence_frame(EngagementSequences.from_arrays(bad)), "seq", exps)
    assert not result.success
    assert any("hist_prefix" in f for f in result.failed)
    assert any("hist_len_matches" in f for f in result.failed)


def _visit_raw() -> RawTables:
    """A tiny synthetic-like log: visits of exposures, some engaged."""
    rows = []
    rng = np.random.default_rng(0)
    t0 = 1_704_067_200
    for u in range(3):
        for v in range(4):
            for p in range(7):
                acts = {a: 0 for a in ACTIONS}
                if rng.random() < 0.4:
                    acts["dwell"] = 1
                    acts["favorite"] = int(rng.random() < 0.5)
                rows.append(
                    {
                        "user_id": f"u{u}",
                        "item_id": f"p{u}{v}{p}",
                        "author_id": f"a{p % 3}",
                        "ts": t0 + v * 86_400 * 3 + u * 100 + p,
                        "visit_id": f"v{u}{v}",
                        "surface": v % 3,
                        "position": p,
                        "dwell_seconds": 1.0,
                        **acts,
                    }
                )
    df = pd.DataFrame(rows).sort_values(["ts", "user_id", "position"]).reset_index(drop=True)
    df["src_row"] = np.arange(len(df))
    items = pd.DataFrame({"item_id": df["item_id"], "author_id": df["author_id"]})
    manifest = {"config": {"num_days": 12, "split": [0.5, 0.25, 0.25]}, "clock_start_ts": t0}
    return RawTables("synthetic", df, items, pd.DataFrame({"user_id": ["u0", "u1", "u2"]}), manifest=manifest)


def test_per_visit_examples_chunk_and_history():
    raw = _visit_raw()
    events = build_events(raw)
    assert set(events["split"]) == {"train", "val", "test"}
    seqs = build_sequences(events, raw.items, "synthetic", SequenceConfig(history_len=S, candidate_len=C))
    ex, hist, cand = seqs.examples, seqs.history, seqs.candidates
    assert seqs.num_examples == 3 * 4 * 2  # 7 impressions per visit -> chunks of 5 and 2
    assert sorted((cand.item_idx >= 0).sum(axis=1).tolist()) == [2] * 12 + [5] * 12
    assert cand.exposed[cand.item_idx >= 0].all()
    engaged = events[events[["dwell", "favorite"]].any(axis=1)]
    for e in range(seqs.num_examples):
        user = seqs.catalogue.user_ids[ex.user_idx[e]]
        prior = engaged[(engaged["user_id"] == user) & (engaged["ts"] < ex.request_ts[e])]
        expected = list(prior["item_id"].iloc[-S:])
        got = list(seqs.catalogue.item_ids[hist.item_idx[e][: hist.length[e]]])
        assert got == expected
    frame = quality.sequence_frame(seqs)
    assert quality.run_suite(frame, "seq", quality.sequence_expectations(S, 100_000, False)).success
    assert hist.actions[:, :, ACTION_INDEX["dwell"]].sum() > 0


def test_item_created_ts_is_creation_or_first_event():
    raw = _visit_raw()
    raw.items["created_ts"] = raw.interactions["ts"] - 100  # creation precedes the first exposure
    seqs = build_sequences(build_events(raw), raw.items, "synthetic", SequenceConfig(history_len=S, candidate_len=C))
    created = dict(zip(raw.items["item_id"], raw.items["created_ts"]))
    assert [created[i] for i in seqs.catalogue.item_ids] == seqs.catalogue.item_created_ts.tolist()
    raw_ml = _ml_raw()
    ev = build_events(raw_ml)
    s2 = build_sequences(ev, raw_ml.items, "movielens-100k", SequenceConfig(history_len=S, candidate_len=C))
    first = ev.groupby("item_id")["ts"].min()
    for item, ts in zip(s2.catalogue.item_ids, s2.catalogue.item_created_ts):
        assert ts == first.get(item, 0)
