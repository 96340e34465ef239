"""Training configs: the tuned defaults per model kind and the step budgets dataset records name."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from x_reco.data.examples import EngagementSequences
from x_reco.data.registry import dataset_spec
from x_reco.training.config import TrainConfig, field_errors

_CPU_MODEL = {"compute_dtype": "float32"}  # bf16 matmuls are emulated (slow) on CPU
_SMALL = {**_CPU_MODEL, "num_layers": 2, "num_q_heads": 2, "num_kv_heads": 2, "table_init_std": 0.1}
# Tuned on MovieLens-100K by the val split alone (docs/evaluation-protocols.md "Tuning"): small hash-table
# init, cosine decay to 10%. The retriever trains causally (every history position predicts its next
# item, the user vector read at the last position, as SASRec), with dropout on its input tokens and the
# table learning rate of the dense params, and a learned score for the items already in its history
# (repeat_logit; docs/evaluation-protocols.md "The repeat term"); it overfits within a few passes over
# the examples, so it evaluates every 100 steps, exports the validation-best (unmasked NDCG@10) and
# stops after 3 worse ones.
# The ranker trains on hard negatives: the retriever's top 200 items the user never interacted with,
# for 2400 steps (800 left it below the retriever it re-ranks), and exports the validation-best of its
# evaluations by the two stages it serves in (two-stage NDCG@10 on val, the ranker's own order), not by
# AUC against sampled negatives, which falls as the two-stage metric rises. The served order blends the
# selected ranker's score with the retriever's at the weight its validation fit (eval.ranker.two_stage).
TUNED: dict[str, dict[str, Any]] = {
    "retriever": dict(
        preset="reference-mini",
        model_overrides={**_SMALL, "emb_size": 32, "key_size": 16, "user_pool": "last", "repeat_logit": True},
        batch_size=256,
        num_steps=1800,
        learning_rate=2e-3,
        warmup_steps=100,
        end_lr_fraction=0.1,
        weight_decay=0.01,
        temperature=0.05,
        table_learning_rate=2e-3,
        retrieval_positions="all",
        dropout=0.3,
        eval_every=100,
        select_best=True,
        selection_metric="ndcg@10",
        early_stopping_patience=3,
        checkpoint_every=400,
    ),
    "ranker": dict(
        preset="reference-mini",
        model_overrides={**_SMALL, "emb_size": 64, "key_size": 32},
        batch_size=128,
        learning_rate=2e-3,
        warmup_steps=80,
        end_lr_fraction=0.1,
        weight_decay=0.01,
        table_learning_rate=3e-2,
        num_steps=2400,
        hard_negative_pool=200,
        eval_every=400,
        select_best=True,
        selection_metric="two_stage_ranker_ndcg@10",
        checkpoint_every=400,
    ),
}

# Step budgets a dataset's record names (``DatasetSpec.train_budget``). The demo keeps `make demo` to a
# few minutes on 2 cores; the real datasets get the tuned budget. The 200-user demo world overfits
# within a few hundred steps, so it exports the validation-best of evaluations every 50 steps (a
# longer run cannot end on an overfit model). On that budget the causal, dropout-regularized recipe
# validated worse than the earlier one (docs/evaluation-protocols.md), so the demo keeps the earlier
# recipe: last-position objective, mean-pooled user, 15x table learning rate, the ranker on the
# impressions the world served.
_DEMO_STEPS = {"retriever": 300, "ranker": 200}
_DEMO_RECIPE: dict[str, dict[str, Any]] = {
    "retriever": dict(
        retrieval_positions="last",
        dropout=0.0,
        table_learning_rate=3e-2,
        selection_metric=None,
        early_stopping_patience=0,
    ),
    "ranker": dict(hard_negative_pool=0),
}
BUDGETS: dict[str, Callable[[str, dict[str, Any]], dict[str, Any]]] = {
    "tuned": lambda kind, base: {},
    "demo": lambda kind, base: dict(
        **_DEMO_RECIPE[kind],
        model_overrides={k: v for k, v in base["model_overrides"].items() if k not in ("user_pool", "repeat_logit")},
        num_steps=_DEMO_STEPS[kind],
        checkpoint_every=100,
        select_best=True,
        eval_every=50,
        warmup_steps=min(base["warmup_steps"], _DEMO_STEPS[kind] // 5),
    ),
}


def catalogue_window_s(manifest: Mapping[str, Any]) -> float | None:
    """The seconds of recent posts a feed can serve, from a raw manifest: a generated world's
    ``config.recency_hours`` (synthetic); None, the whole catalogue, for sources without one."""
    hours = manifest.get("config", {}).get("recency_hours")
    return float(hours) * 3600 if hours else None


WARM_START_FRACTION = 3  # a warm start trains a third of the partition's step budget


def default_train_config(
    partition: str,
    kind: str,
    *,
    catalogue_window_s: float | None = None,
    init_checkpoint: str | None = None,
    **overrides: Any,
) -> TrainConfig:
    """TrainConfig for ``kind`` in {"retriever", "ranker"} on ``partition``, with field overrides.

    ``catalogue_window_s``: where a feed only serves recent posts (the synthetic world's recency
    window), the retriever trains with negatives from that window (``negative_window_s``), and so do
    the ranker's hard negatives; its two-stage validation retrieves from that window.
    ``init_checkpoint``: warm-start from that exported model (the champion, when retraining on new
    data) for a third of the step budget, with a proportionally shorter warmup and evaluation cadence.
    """
    if kind not in TUNED:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {sorted(TUNED)}")
    base = dict(TUNED[kind])
    base.update(BUDGETS[dataset_spec(partition).train_budget](kind, base))
    if catalogue_window_s:  # the ranker's hard negatives and two-stage validation: the same window
        base["negative_window_s"] = float(catalogue_window_s)
    if init_checkpoint:
        steps = max(base["num_steps"] // WARM_START_FRACTION, 2)
        base.update(
            num_steps=steps, warmup_steps=min(base["warmup_steps"], steps // 5), init_checkpoint=init_checkpoint
        )
        if base.get("eval_every", 0) >= steps:
            base["eval_every"] = max(steps // 2, 1)
    base.update(overrides)
    return TrainConfig.from_dict(base)


def check_overrides(overrides: Mapping[str, Any]) -> None:
    """Raise ValueError, naming each field, its value and what is allowed, if ``default_train_config``
    overrides are wrong on their own, before the partition (hence the run's whole config) is known:
    for a run config to fail before any work. Relations between fields are checked at construction."""
    errors: list[str] = []
    for tuned in TUNED.values():
        model = {k: tuned[k] for k in ("preset", "model_overrides")}
        errors += [e for e in field_errors({**model, **overrides}) if e not in errors]
    if errors:
        raise ValueError("invalid TrainConfig overrides: " + "; ".join(errors))


def overrides_from_json(text: str) -> dict[str, Any]:
    """The TrainConfig overrides a JSON object spells ('' for none); ValueError if it is not one."""
    try:
        overrides = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as err:
        raise ValueError(
            f"overrides_json={text!r} is not JSON ({err}); expected an object of TrainConfig fields"
        ) from None
    if not isinstance(overrides, dict):
        raise ValueError(f"overrides_json={text!r} must be a JSON object of TrainConfig fields")
    return overrides


def data_digest(seqs: EngagementSequences) -> str:
    """Short digest of the sequences a model trains on (part of its run directory name)."""
    h = hashlib.sha256()
    arrays = seqs.to_arrays()
    for key in ("split", "user_hashes", "hist_post_hashes", "cand_post_hashes", "cand_actions", "hash_spec_json"):
        h.update(key.encode())
        h.update(np.ascontiguousarray(arrays[key]).tobytes())
    return h.hexdigest()[:12]


def config_digest(cfg: TrainConfig) -> str:
    return hashlib.sha256(json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=str).encode()).hexdigest()[:12]
