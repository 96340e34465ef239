"""TrainConfig: the one frozen config of a Phoenix training run, and the model config it derives."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from x_reco.configs.phoenix import PhoenixConfig
from x_reco.features.hashing import HashSpec

if TYPE_CHECKING:
    from x_reco.data.examples import EngagementSequences

RETRIEVAL_LOSSES = ("auto", "full", "sampled")
TABLE_OPTIMIZERS = ("adamw", "rowwise_adagrad", "sparse_rowwise_adagrad")
_HASH_KEYS = (
    "num_user_hashes",
    "num_post_hashes",
    "num_author_hashes",
    "user_vocab_size",
    "post_vocab_size",
    "author_vocab_size",
    "hash_spec",
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Optimizer, schedule, data order, loss and cadence of one training run (phoenix spec §13).

    ``model_overrides`` are ``PhoenixConfig`` fields applied to ``preset``; hash counts and table
    rows come from the data's ``HashSpec`` and may only be overridden with the same values.
    Retrieval uses a full softmax over the catalogue when it has at most ``full_softmax_max_items``
    items (``retrieval_loss="auto"``), otherwise in-batch negatives with logQ correction.
    With ``negative_window_s`` the retriever is trained time-aware: a pair's negatives are only the
    items created in ``[request_ts - negative_window_s, request_ts]`` (what a feed could serve then),
    and validation ranks that same windowed catalogue.
    With ``select_best`` the exported model is the validation-best of the evaluations every
    ``eval_every`` steps and at the end (``selection_metric``, higher is better; default
    ``masked_ndcg@10`` for the retriever, ``mean_auc`` for the ranker): early stopping without
    stopping, so a run longer than the data supports does not export an overfit model.
    ``mask_sampled_negative_actions`` drops the ranker's negative-action labels on sampled negatives
    (see ``data.make_labels``); the default keeps the spec's all-zero rows.
    """

    preset: str = "tiny"
    model_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    batch_size: int = 64
    num_steps: int = 1000
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    end_lr_fraction: float = 0.0
    weight_decay: float = 0.01
    clip_norm: float = 1.0
    seed: int = 0
    temperature: float = 0.05
    retrieval_loss: str = "auto"
    full_softmax_max_items: int = 50_000
    negative_window_s: float | None = None
    mask_sampled_negative_actions: bool = False
    table_optimizer: str = "adamw"
    table_learning_rate: float | None = None
    eval_every: int = 0
    select_best: bool = False
    selection_metric: str | None = None
    eval_batch_size: int = 256
    checkpoint_every: int = 0
    keep_checkpoints: int = 2

    def __post_init__(self):
        object.__setattr__(self, "model_overrides", dict(self.model_overrides))
        errors = []
        positive = ("batch_size", "num_steps", "eval_batch_size", "keep_checkpoints")
        errors += [f"{n}={getattr(self, n)} must be >= 1" for n in positive if getattr(self, n) < 1]
        nonneg = ("warmup_steps", "weight_decay", "eval_every", "checkpoint_every", "end_lr_fraction")
        errors += [f"{n}={getattr(self, n)} must be >= 0" for n in nonneg if getattr(self, n) < 0]
        if self.warmup_steps >= self.num_steps:
            errors.append(f"warmup_steps={self.warmup_steps} must be < num_steps={self.num_steps}")
        for name in ("learning_rate", "clip_norm", "temperature"):
            if not getattr(self, name) > 0:
                errors.append(f"{name}={getattr(self, name)} must be > 0")
        if self.negative_window_s is not None and not self.negative_window_s > 0:
            errors.append(f"negative_window_s={self.negative_window_s} must be > 0 (or None)")
        if self.select_best and not self.eval_every:
            errors.append("select_best needs eval_every > 0 (the evaluations it selects from)")
        if self.table_learning_rate is not None and not self.table_learning_rate > 0:
            errors.append(f"table_learning_rate={self.table_learning_rate} must be > 0")
        if self.retrieval_loss not in RETRIEVAL_LOSSES:
            errors.append(f"retrieval_loss={self.retrieval_loss!r} not in {RETRIEVAL_LOSSES}")
        if self.table_optimizer not in TABLE_OPTIMIZERS:
            errors.append(f"table_optimizer={self.table_optimizer!r} not in {TABLE_OPTIMIZERS}")
        if errors:
            raise ValueError("invalid TrainConfig: " + "; ".join(errors))
        PhoenixConfig.preset(self.preset).replace(**self._model_fields())  # unknown keys / bad values raise now

    def _model_fields(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_overrides.items() if k not in _HASH_KEYS}

    # -- derived ---------------------------------------------------------------------------------
    def model_config(self, hash_spec: HashSpec, history_len: int, candidate_len: int) -> PhoenixConfig:
        """The preset with overrides, hash counts and table rows from ``hash_spec`` (the data's).

        Raises ValueError if an override names a hash count, table size or spec different from the data's.
        """
        base = PhoenixConfig.preset(self.preset)
        derived = {
            "num_user_hashes": hash_spec.num_hashes[0],
            "num_post_hashes": hash_spec.num_hashes[1],
            "num_author_hashes": hash_spec.num_hashes[2],
            "user_vocab_size": hash_spec.vocab_sizes[0],
            "post_vocab_size": hash_spec.vocab_sizes[1],
            "author_vocab_size": hash_spec.vocab_sizes[2],
        }
        clashes = {k: v for k, v in self.model_overrides.items() if k in derived and v != derived[k]}
        spec = self.model_overrides.get("hash_spec")
        if spec is not None:
            spec = HashSpec.from_dict(spec) if isinstance(spec, Mapping) else spec
            spec.check_compatible(hash_spec, where="between TrainConfig.model_overrides and the data")
        if clashes:
            raise ValueError(f"model_overrides {clashes} contradict the data's HashSpec {hash_spec}")
        fields = {"history_len": history_len, "candidate_len": candidate_len, **self._model_fields()}
        return base.replace(**fields, **derived, hash_spec=hash_spec)

    def use_full_softmax(self, num_items: int) -> bool:
        if self.retrieval_loss == "auto":
            return num_items <= self.full_softmax_max_items
        return self.retrieval_loss == "full"

    # -- serialization ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["model_overrides"] = dict(self.model_overrides)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=str)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Inverse of ``to_dict``; unknown keys raise ValueError."""
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown TrainConfig keys: {unknown}")
        return cls(**data)

    def replace(self, **changes: Any) -> TrainConfig:
        return TrainConfig.from_dict({**self.to_dict(), **changes})


def model_config_for(cfg: TrainConfig, seqs: EngagementSequences) -> PhoenixConfig:
    """``cfg.model_config`` with the data's HashSpec and its history / candidate lengths."""
    return cfg.model_config(seqs.hash_spec, seqs.history_len, seqs.candidate_len)
