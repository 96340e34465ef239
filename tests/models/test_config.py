"""PhoenixConfig contract: pinned ffn_size (§12 row 3), presets, construction-time validation, round trip.

Guards: a silently wrong FFN width (the reference's rounding rule), configs that only fail deep inside
jit, and unknown keys slipping through a JSON round trip.
"""

import dataclasses
import json

import pytest

from x_reco.common.actions import ACTIONS
from x_reco.configs import PhoenixConfig, ffn_size
from x_reco.features.hashing import HashSpec


@pytest.mark.parametrize("d,wf,want", [(128, 2, 176), (64, 2, 88), (128, 4, 344), (512, 2, 688), (32, 2, 48)])
def test_ffn_size_pinned(d, wf, want):
    assert ffn_size(d, wf) == want


@pytest.mark.parametrize(
    "name,d,layers,hq,hkv,dk,f,hashes,rows,vs,s,c",
    [
        ("tiny", 32, 2, 4, 2, 8, 48, (2, 3, 1), (101, 211, 53), 7, 11, 5),
        ("reference-mini", 128, 2, 2, 2, 64, 176, (2, 2, 2), (100_000,) * 3, 16, 32, 8),
        ("oss-mini", 128, 4, 4, 4, 32, 176, (2, 2, 2), (1_000_000,) * 3, 16, 127, 64),
        ("large", 512, 12, 8, 4, 64, 688, (2, 2, 2), (1_000_000,) * 3, 16, 512, 64),
    ],
)
def test_presets_match_spec_table(name, d, layers, hq, hkv, dk, f, hashes, rows, vs, s, c):
    cfg = PhoenixConfig.preset(name)
    got = (cfg.emb_size, cfg.num_layers, cfg.num_q_heads, cfg.num_kv_heads, cfg.key_size, cfg.ffn_size)
    assert got == (d, layers, hq, hkv, dk, f)
    assert (cfg.num_hashes, cfg.vocab_sizes, cfg.product_surface_vocab_size) == (hashes, rows, vs)
    assert (cfg.history_len, cfg.candidate_len, cfg.attn_output_multiplier) == (s, c, 0.125)
    assert cfg.history_action_names == cfg.output_action_names == ACTIONS
    assert (cfg.candidate_position_mode, cfg.compute_dtype, cfg.param_dtype, cfg.logits_dtype, cfg.init) == (
        "shared",
        "bfloat16",
        "float32",
        "float32",
        "xavier",
    )
    assert (cfg.hash_spec.num_hashes, cfg.hash_spec.vocab_sizes) == (hashes, rows)
    assert PhoenixConfig.preset(name.replace("-", "_")) == cfg


def test_preset_overrides_and_hash_spec_follows():
    cfg = PhoenixConfig.preset("oss-mini", num_post_hashes=3, post_vocab_size=777, compute_dtype="float32")
    assert cfg.hash_spec.num_hashes == (2, 3, 2) and cfg.hash_spec.vocab_sizes == (1_000_000, 777, 1_000_000)
    assert cfg.compute_dtype == "float32" and cfg.num_layers == 4
    with pytest.raises(ValueError, match="unknown PhoenixConfig keys"):
        PhoenixConfig.tiny(emb_sise=8)
    with pytest.raises(ValueError, match="unknown preset"):
        PhoenixConfig.preset("huge")


def test_multiplier_has_no_default():
    fields = {f.name: f for f in dataclasses.fields(PhoenixConfig)}
    assert fields["attn_output_multiplier"].default is dataclasses.MISSING
    with pytest.raises(TypeError):
        PhoenixConfig(**{k: v for k, v in PhoenixConfig.tiny().to_dict().items() if k != "attn_output_multiplier"})


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PhoenixConfig.tiny().emb_size = 64


@pytest.mark.parametrize(
    "overrides,fragment",
    [
        ({"num_q_heads": 3}, "num_q_heads=3 not divisible by num_kv_heads=2"),
        ({"key_size": 7}, "key_size=7 must be even"),
        ({"user_vocab_size": 1}, "user_vocab_size=1 must be >= 2"),
        ({"num_author_hashes": 0}, "num_author_hashes=0 must be >= 1"),
        ({"candidate_position_mode": "left"}, "candidate_position_mode='left'"),
        ({"init": "zeros"}, "init='zeros'"),
        ({"output_action_names": ()}, "output_action_names must be non-empty"),
        ({"hash_spec": HashSpec(num_hashes=(2, 2, 2), vocab_sizes=(101, 211, 53))}, "does not match"),
        ({"compute_dtype": "not-a-dtype"}, "not a dtype"),
    ],
)
def test_validation_names_offending_values(overrides, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace("[", r"\[")):
        PhoenixConfig.tiny(**overrides)


def test_dict_round_trip_and_digest():
    cfg = PhoenixConfig.tiny(candidate_position_mode="reference", compute_dtype="float32")
    again = PhoenixConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.digest() == cfg.digest()
    assert PhoenixConfig.tiny().digest() != cfg.digest()
    with pytest.raises(ValueError, match="unknown PhoenixConfig keys: \\['bogus'\\]"):
        PhoenixConfig.from_dict({**cfg.to_dict(), "bogus": 1})


def test_dtype_aliases_normalise():
    import jax.numpy as jnp

    assert PhoenixConfig.tiny(compute_dtype=jnp.float32) == PhoenixConfig.tiny(compute_dtype="float32")
