"""The one hashing stage (§12 row 22, §4): splitmix64 golden values and oracle equality, ranges
[1, V-1] for every family, positional padding 0, determinism across processes, a single
implementation in the library, and HashSpec mismatches raising.

Guards: two hash implementations drifting apart (trained tables then mean nothing) and per-process
hash randomization (Python's ``hash``) sneaking in.
"""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from x_reco.features.hashing import Hasher, HashSpec, mix64, mix64_int, splitmix64_hashes

_M64 = (1 << 64) - 1


def oracle(ids, entity_code, k, vocab, seed=0):
    out = []
    for x in ids:
        row = []
        for j in range(k):
            s = mix64_int(((seed << 16) | (entity_code << 8) | j) & _M64)
            row.append(1 + mix64_int((int(x) ^ s) & _M64) % (vocab - 1))
        out.append(row)
    return np.asarray(out)


def test_golden_values():
    assert mix64_int(0) == 0xE220A8397B1DCDAF and mix64_int(1) == 0x910A2DEC89025CC1
    assert int(mix64(np.uint64(0))) == 0xE220A8397B1DCDAF
    v = 1_000_000
    assert splitmix64_hashes(np.asarray([1]), "user", 2, v).tolist() == [[312636, 711114]]
    assert splitmix64_hashes(np.asarray([12345]), "post", 2, v).tolist() == [[873311, 622286]]
    assert splitmix64_hashes(np.asarray([2**64 - 1], np.uint64), "author", 2, v).tolist() == [[215745, 1609]]


def test_vectorized_equals_big_int_oracle():
    rng = np.random.default_rng(0)
    ids = np.concatenate(
        [
            rng.integers(0, 2**63, 200, dtype=np.uint64) * np.uint64(2) + np.uint64(1),
            np.asarray([0, 1, 2**64 - 1], np.uint64),
        ]
    )
    for entity, code in (("user", 1), ("post", 2), ("author", 3)):
        got = splitmix64_hashes(ids, entity, 3, 211, seed=7)
        assert np.array_equal(got, oracle(ids.tolist(), code, 3, 211, seed=7))


@pytest.mark.parametrize("family", ["blake2b", "splitmix64"])
def test_ranges_and_positional_padding(family):
    spec = HashSpec(family=family, num_hashes=(2, 3, 1), vocab_sizes=(101, 211, 53))
    hasher = Hasher(spec)
    ids = [str(i) for i in range(500)] if family == "blake2b" else list(range(500))
    for entity, vocab in (("user", 101), ("post", 211), ("author", 53)):
        out = hasher.hash_ids(entity, ids)
        assert out.dtype == np.int32 and out.min() >= 1 and out.max() <= vocab - 1
        assert len(np.unique(out)) > vocab // 2  # spreads over the table
        padded = hasher.hash_ids(entity, [ids[0], None, ""])
        assert (padded[1:] == 0).all() and (padded[0] != 0).all()


def test_identical_across_processes():
    code = (
        "import json; from x_reco.features.hashing import Hasher, HashSpec\n"
        "out = {}\n"
        "for fam in ('blake2b', 'splitmix64'):\n"
        "    h = Hasher(HashSpec(family=fam, num_hashes=(2, 3, 1), vocab_sizes=(101, 211, 53)))\n"
        "    ids = ['7', '42', 'abc'] if fam == 'blake2b' else [7, 42, 99]\n"
        "    out[fam] = h.hash_ids('post', ids).tolist()\n"
        "print(json.dumps(out))\n"
    )
    root = pathlib.Path(__file__).resolve().parents[2]
    runs = [
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(seed), "PATH": "/usr/bin:/bin"},
        ).stdout
        for seed in (1, 2)
    ]
    assert json.loads(runs[0]) == json.loads(runs[1])
    here = Hasher(HashSpec(num_hashes=(2, 3, 1), vocab_sizes=(101, 211, 53))).hash_ids("post", ["7", "42", "abc"])
    assert json.loads(runs[0])["blake2b"] == here.tolist()


def test_single_implementation_in_library():
    """Data layer, training and serving must import x_reco.features.hashing, never re-implement it."""
    lib = pathlib.Path(__file__).resolve().parents[2] / "x_reco"
    owners = sorted(
        str(p.relative_to(lib)) for p in lib.rglob("*.py") if "bf58476d1ce4e5b9" in p.read_text(errors="ignore").lower()
    )
    assert owners == ["features/hashing.py"]


def test_hash_spec_mismatch_raises():
    spec = HashSpec(num_hashes=(2, 3, 1), vocab_sizes=(101, 211, 53))
    spec.check_compatible(HashSpec.from_dict(json.loads(json.dumps(spec.to_dict()))))
    with pytest.raises(ValueError, match="HashSpec mismatch"):
        spec.check_compatible(HashSpec(salt="other", num_hashes=(2, 3, 1), vocab_sizes=(101, 211, 53)))
