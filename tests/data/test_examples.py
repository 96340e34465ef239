"""The typed engagement sequences (x_reco/data/examples.py): split codes are the ``Split`` enum; a value
saved to .npz loads equal, with the on-disk keys of the datasets spec; a file with a missing or
wrongly shaped field fails naming the file and the field; split views and re-hashing keep every
non-hash array and change the hashes as a fresh build with the new HashSpec would."""

import dataclasses

import numpy as np
import pytest

from tests.training.helpers import PARTITION, toy_raw, toy_seqs
from x_reco.data.events import build_events
from x_reco.data.examples import EngagementSequences, SequencesFormatError, Split
from x_reco.data.sequences import SequenceConfig, build_sequences

SPEC_KEYS = {
    "example_id",
    "split",
    "user_idx",
    "request_ts",
    "surface",
    "hist_len",
    "hist_item_idx",
    "hist_author_idx",
    "hist_ts",
    "hist_surface",
    "hist_actions",
    "cand_item_idx",
    "cand_actions",
    "cand_dwell_seconds",
    "cand_exposed",
    "cand_sampled",
    "user_hashes",
    "hist_post_hashes",
    "hist_author_hashes",
    "cand_post_hashes",
    "cand_author_hashes",
    "user_ids",
    "item_ids",
    "author_ids",
    "item_author_idx",
    "item_created_ts",
    "item_post_hashes",
    "item_author_hashes",
    "observed_mask",
    "partition",
    "config_json",
    "hash_spec_json",
}


def _assert_equal(a: EngagementSequences, b: EngagementSequences):
    x, y = a.to_arrays(), b.to_arrays()
    assert x.keys() == y.keys()
    for k in x:
        assert x[k].dtype == y[k].dtype and x[k].tobytes() == y[k].tobytes(), k
    assert (a.partition, a.config, a.hash_spec) == (b.partition, b.config, b.hash_spec)


def test_split_enum_codes_and_labels():
    assert [int(s) for s in Split] == [0, 1, 2] and [s.label for s in Split] == ["train", "val", "test"]
    assert Split.parse("val") is Split.VAL and Split.parse(2) is Split.TEST and Split.parse(Split.TRAIN) is Split.TRAIN
    assert Split.codes() == {"train": 0, "val": 1, "test": 2}
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        Split.parse("dev")
    seqs = toy_seqs()
    codes = np.unique(seqs.examples.split)
    assert codes.tolist() == [0, 1, 2]
    assert sum(len(seqs.rows(s)) for s in Split) == seqs.num_examples
    assert np.array_equal(seqs.rows("test"), np.flatnonzero(seqs.examples.split == 2))


def test_npz_round_trip_is_equal_and_keeps_the_spec_keys(tmp_path):
    seqs = toy_seqs()
    assert set(seqs.to_arrays()) == SPEC_KEYS
    path = tmp_path / "seqs.npz"
    seqs.to_npz(path)
    with np.load(path, allow_pickle=False) as z:
        assert set(z.files) == SPEC_KEYS
    _assert_equal(EngagementSequences.from_npz(path), seqs)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.pop("cand_sampled"), r"missing field\(s\) \['cand_sampled'\]"),
        (lambda a: a.update(hist_ts=a["hist_ts"][:, :3]), r"field 'hist_ts' has shape \(672, 3\): axis S is 3, but 7"),
        (lambda a: a.update(cand_actions=a["cand_actions"][..., :18]), r"'cand_actions'.*axis A is 18, but 19"),
        (lambda a: a.update(user_idx=a["user_idx"][:, None]), r"field 'user_idx' has shape \(672, 1\).*expected \[E\]"),
        (lambda a: a.update(item_ids=np.arange(64)), r"field 'item_ids'.*of kind 'U'"),
        (lambda a: a.update(config_json=np.asarray('{"history_len": 7, "colour": 1}')), r"unknown SequenceConfig keys"),
    ],
)
def test_bad_file_names_the_file_and_field(tmp_path, change, message):
    arrays = {k: v.copy() for k, v in toy_seqs().to_arrays().items()}
    change(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(SequencesFormatError, match=message) as info:
        EngagementSequences.from_npz(path)
    assert str(path) in str(info.value)


def test_split_view_takes_rows_and_keeps_the_catalogue():
    seqs = toy_seqs()
    val = seqs.split_view(Split.VAL)
    rows = seqs.rows(Split.VAL)
    assert val.num_examples == len(rows) == 48 and (val.examples.split == Split.VAL).all()
    assert np.array_equal(val.history.post_hashes, seqs.history.post_hashes[rows])
    assert np.array_equal(val.candidates.actions, seqs.candidates.actions[rows])
    assert val.catalogue is seqs.catalogue and val.hash_spec == seqs.hash_spec


def test_rehash_equals_a_fresh_build_with_the_new_spec():
    seqs = toy_seqs(vocab_size=1009)
    spec = dataclasses.replace(seqs.hash_spec, vocab_sizes=(97,) * 3)
    rehashed = seqs.rehash(spec)
    raw = toy_raw()
    fresh = build_sequences(
        build_events(raw), raw.items, PARTITION, SequenceConfig(history_len=7, candidate_len=5, vocab_size=97)
    )
    _assert_equal(rehashed, fresh)
    assert rehashed.hash_spec == spec and rehashed.config.vocab_size == 97
    assert rehashed.catalogue.post_hashes.max() < 97 < seqs.catalogue.post_hashes.max()
    with pytest.raises(ValueError, match="one vocab_size"):
        seqs.rehash(dataclasses.replace(spec, vocab_sizes=(97, 101, 97)))
