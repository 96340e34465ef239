"""The synthetic world as a stream of days: with every day arrived the cut is the whole world, table
for table; an earlier clock keeps exactly the rows before it (an unfollow after the clock has not
happened yet) and moves the split so the newest day is the test day; a day's counts and digest are
the same whoever computes them; the clock stops at the first missing day."""

import functools

import pandas as pd
import pytest

from x_reco.data.registry import STREAM_PARTITION, dataset_spec, load_raw
from x_reco.data.synthetic.stream import (
    DAY_KEYS,
    clock_of,
    cut_world,
    day_digest,
    day_key,
    day_number,
    day_slice_counts,
    end_of_day_ts,
)


@functools.cache
def world():
    return load_raw(STREAM_PARTITION, synthetic_config={"size": "tiny"})


def _tables(raw):
    return {
        "interactions": raw.interactions,
        "items": raw.items,
        "users": raw.users,
        **{f"extra.{k}": v for k, v in raw.extra.items()},
        **{f"truth.{k}": v for k, v in raw.truth.items()},
    }


def test_the_stream_partition_is_the_generated_world():
    assert dataset_spec(STREAM_PARTITION).streamed and dataset_spec(STREAM_PARTITION).generated
    with pytest.raises(ValueError, match="does not arrive day by day"):
        load_raw("movielens-100k", clock_day=3)


def test_every_day_arrived_is_the_whole_world():
    whole = world()
    horizon = whole.manifest["config"]["num_days"]
    cut = cut_world(whole, horizon)
    for name, frame in _tables(whole).items():
        pd.testing.assert_frame_equal(_tables(cut)[name], frame, obj=name)
    assert cut.manifest["clock"]["day"] == horizon


def test_an_earlier_clock_keeps_the_past_and_moves_the_split():
    whole, day = world(), 3
    cut = cut_world(whole, day)
    until = end_of_day_ts(day)
    assert cut.interactions["ts"].max() < until and len(cut.interactions) == (whole.interactions["ts"] < until).sum()
    assert set(cut.truth["impressions"]["impression_id"]) == set(cut.interactions["impression_id"])
    assert cut.items["created_ts"].max() < until and set(cut.extra["post_text"]["post_id"]) == set(cut.items["item_id"])
    follows = cut.extra["follows"]
    assert (follows["since_ts"] < until).all() and not (follows["until_ts"].dropna() >= until).any()
    assert cut.manifest["split_cutoffs"] == {"train_end_ts": until - 2 * 86_400, "val_end_ts": until - 86_400}
    assert cut.manifest["counts"]["impressions"] == len(cut.interactions)
    windowed = cut_world(whole, 5, window_days=3)
    assert windowed.interactions["ts"].min() >= end_of_day_ts(2)


def test_bad_clocks_name_the_bounds():
    with pytest.raises(ValueError, match="needs 3 to 5 arrived days"):
        cut_world(world(), 2)
    with pytest.raises(ValueError, match="needs 3 to 5 arrived days"):
        cut_world(world(), 6)
    with pytest.raises(ValueError, match="not a simulated day"):
        day_number("tomorrow")
    with pytest.raises(ValueError, match="outside the simulated days"):
        day_number("2023-12-31")


def test_a_day_is_the_same_rows_whoever_computes_it():
    again = load_raw(STREAM_PARTITION, synthetic_config={"size": "tiny"})
    assert [day_slice_counts(world(), d) for d in (1, 4)] == [day_slice_counts(again, d) for d in (1, 4)]
    assert day_digest(world(), 4) == day_digest(again, 4) != day_digest(world(), 3)
    assert sum(day_slice_counts(world(), d)["impressions"] for d in range(1, 6)) == len(world().interactions)


def test_the_clock_stops_at_the_first_missing_day():
    assert DAY_KEYS[0] == "2024-01-01" and day_number(day_key(17)) == 17
    assert clock_of(set()) == 0 and clock_of({day_key(2), day_key(3)}) == 0
    assert clock_of({day_key(d) for d in (1, 2, 3, 5)}) == 3
