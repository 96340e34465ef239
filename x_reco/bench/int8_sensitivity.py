"""Where INT8 loses the ranking: fake-quantized variants of a trained ranker against ref-f32.

``python -m x_reco.bench.int8_sensitivity --checkpoint DIR/run/model --sequences DIR/sequences.npz
SPEC [SPEC ...]`` (the checkpoint and sequences of ``python -m x_reco.bench.trained``) prints one JSON
line per SPEC: the top-3 exact match and top-10 overlap of the weighted score over 1,000 catalogue
candidates for 200 users (the §5.6 quality block), computed in f32 with the quantization error alone.

A SPEC is ``W,T[,SKIP]``: ``W`` the group size of symmetric int8 weights along their input axis (0 =
one scale per output channel, the ``w8`` format; ``c`` = the same format rounded with error compensation
against the inputs of ``--calibration-users`` train-split requests, ``w8-cal``; ``b`` = stored in bf16;
``f`` = weights stay f32), ``T`` the group size of the
hash tables along a row (0 = one scale per row, ``t8``; ``f`` = f32), ``SKIP`` ``|``-separated path
fragments left f32 (e.g. ``tables/post|layers/0``). Weights are quantized then dequantized to f32
(``fake_quant_*``), so the numbers isolate the rounding error from the compute dtype.
"""

from __future__ import annotations

import argparse
import json

import jax.numpy as jnp
import numpy as np

from x_reco.bench.quality import QualityJob, _source, score_users
from x_reco.bench.quality_metrics import quality_block
from x_reco.bench.timing import VariantSpec, build_variant, variant_spec
from x_reco.inference.calibrate import input_moments
from x_reco.inference.params import map_state
from x_reco.inference.quantize import quantize_weight, w8_scope
from x_reco.layers.quant import dense


def _fake_quant(x: np.ndarray, axis: int, group: int) -> np.ndarray:
    """Symmetric int8 with one scale per ``group`` consecutive entries along ``axis`` (0: the whole axis)."""
    x = np.moveaxis(np.asarray(x, np.float32), axis, -1)
    n = x.shape[-1]
    g = n if group <= 0 or n % group else group
    blocks = x.reshape(*x.shape[:-1], n // g, g)
    scale = np.abs(blocks).max(axis=-1, keepdims=True) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.round(blocks / scale), -127, 127)
    return np.moveaxis((q * scale).reshape(x.shape), -1, axis)


def fake_quant_weight(w: np.ndarray, group: int = 0) -> np.ndarray:
    """W [in, out] through int8 and back, groups along ``in`` (0 = per output channel, as ``w8``)."""
    return _fake_quant(w, 0, group)


def fake_quant_table(t: np.ndarray, group: int = 0) -> np.ndarray:
    """A [V, D] table through int8 and back, groups along a row (0 = per row, as ``t8``)."""
    return _fake_quant(t, 1, group)


CALIBRATED = -2  # the W field "c"
BF16 = -3  # "b": a bf16 round trip (twice the bytes of int8), for scale


def parse_spec(spec: str) -> tuple[int, int, tuple[str, ...]]:
    parts = spec.split(",")
    if len(parts) not in (2, 3):
        raise ValueError(f"SPEC {spec!r}: expected W,T[,SKIP], e.g. 0,0 or c,0 or 32,f,tables/post")
    skip = tuple(p for p in (parts[2] if len(parts) == 3 else "").split("|") if p)
    group = lambda g: {"f": -1, "c": CALIBRATED, "b": BF16}.get(g.strip()) or int(g)  # noqa: E731
    if group(parts[1]) == CALIBRATED:
        raise ValueError(f"SPEC {spec!r}: calibrated rounding (c) applies to the weights, not the tables")
    return group(parts[0]), group(parts[1]), skip


def run(
    checkpoint: str,
    sequences: str,
    specs: list[str],
    users: int = 200,
    candidates: int = 1000,
    calibration_users: int = 64,
):
    parsed = [parse_spec(text) for text in specs]
    calibrated = any(w == CALIBRATED for w, _, _ in parsed)
    job = QualityJob.trained(
        checkpoint,
        sequences,
        users=users,
        candidates=candidates,
        calibration_users=calibration_users,
        variants=("w8-cal",) if calibrated else ("w8",),  # the job's users and, for "c", its calibration requests
    )
    source, batch, _ = _source(job)
    ref_spec = variant_spec("ref-f32")
    ref_logits, ref_score, _ = score_users(build_variant(source, ref_spec), ref_spec, batch, 8)
    scope = set(w8_scope(source.state)[0])
    moments = input_moments(source, job.calibration_batch) if calibrated else None
    for text, (w_group, t_group, skip) in zip(specs, parsed, strict=True):

        def convert(path, w, w_group=w_group, t_group=t_group, skip=skip):
            if any(s in path for s in skip):
                return w
            if (path.startswith("tables/") and t_group == BF16) or (path in scope and w_group == BF16):
                return np.asarray(jnp.asarray(w).astype(jnp.bfloat16).astype(jnp.float32))
            if path.startswith("tables/") and t_group >= 0:
                return fake_quant_table(w, t_group)
            if path in scope and w_group == CALIBRATED:
                return np.asarray(dense(quantize_weight(w, moments[path])))
            if path in scope and w_group >= 0:
                return fake_quant_weight(w, w_group)
            return w

        spec = VariantSpec(text, fmt="f32", path="split", compute_dtype="float32")
        sm = build_variant(source.replace(state=map_state(source.state, convert)), spec)
        logits, score, _ = score_users(sm, spec, batch, 8)
        block = quality_block(ref_logits, logits, ref_score, score, sm.config.output_action_names, trained=True)
        n = max(int(k.split("/N")[1]) for k in block["topk"])
        yield {
            "spec": text,
            "top3_exact": block["topk"][f"weighted@3/N{n}"]["exact"],
            "top10_overlap": block["topk"][f"weighted@10/N{n}"]["overlap"],
            "median_tau": block["kendall_tau"]["weighted"]["median"],
            "N": n,
            "users": users,
            "score_weights": job.objective,
        }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m x_reco.bench.int8_sensitivity", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--sequences", required=True)
    p.add_argument("--users", type=int, default=200, help="judged users (test-split requests), one per user")
    p.add_argument("--candidates", type=int, default=1000)
    p.add_argument("--calibration-users", type=int, default=64, help="train-split requests the c rounding uses")
    p.add_argument("specs", nargs="+", metavar="SPEC")
    a = p.parse_args(argv)
    for record in run(a.checkpoint, a.sequences, a.specs, a.users, a.candidates, a.calibration_users):
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
