"""TrainConfig: the one frozen config of a Phoenix training run, and the model config it derives."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import numbers
import types
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from x_reco.configs.phoenix import PhoenixConfig
from x_reco.features.hashing import HashSpec

if TYPE_CHECKING:
    from x_reco.data.examples import EngagementSequences

RETRIEVAL_LOSSES = ("auto", "full", "sampled")
RETRIEVAL_POSITIONS = ("last", "all")
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
_AT_LEAST_1 = ("batch_size", "num_steps", "eval_batch_size", "keep_checkpoints")
_AT_LEAST_0 = (
    "hard_negative_pool",
    "hard_negative_count",
    "warmup_steps",
    "eval_every",
    "checkpoint_every",
    "seed",
    "full_softmax_max_items",
    "weight_decay",
    "early_stopping_patience",
    "listwise_weight",
)
_ABOVE_0 = ("learning_rate", "clip_norm", "temperature", "table_learning_rate", "negative_window_s")
_FRACTIONS = ("end_lr_fraction",)
_BELOW_1 = ("dropout", "residual_dropout", "ema_decay")
_CHOICES = {
    "retrieval_loss": RETRIEVAL_LOSSES,
    "retrieval_positions": RETRIEVAL_POSITIONS,
    "table_optimizer": TABLE_OPTIMIZERS,
}


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
    ``retrieval_positions="all"`` trains the retriever causally (as SASRec and HSTU do): every valid
    position of [user | history] predicts the item that comes next, position p's user vector pooling
    positions <= p (``PhoenixRetriever.prefix_users``); ``"last"`` trains only the request's own
    position (``encode_user``). A request with no history gives the same loss either way.
    ``dropout`` zeroes that share of the retriever user tower's input token features during training,
    ``residual_dropout`` that share of every layer's residual branches (inverted dropout, masks seeded
    by (seed, step, row, site)); evaluation and serving never drop.
    With ``select_best`` the exported model is the validation-best of the evaluations every
    ``eval_every`` steps and at the end (``selection_metric``, higher is better; default
    ``masked_ndcg@10`` for the retriever, ``mean_auc`` for the ranker, whose ``two_stage_ranker_ndcg@10``
    re-ranks the retriever's top 200 on val and ``two_stage_ndcg@10`` blends that with the retriever's
    score, ``train_ranker(retriever=...)``): early stopping without
    stopping, so a run longer than the data supports does not export an overfit model;
    ``early_stopping_patience=k`` also stops the run after k evaluations in a row without a new best.
    With ``init_checkpoint`` the run warm-starts: the parameters of that exported model (same kind
    and shapes) replace the seeded initialization; the optimizer state starts fresh.
    ``mask_sampled_negative_actions`` drops the ranker's negative-action labels on sampled negatives
    (see ``data.make_labels``); the default keeps the spec's all-zero rows.
    ``hard_negative_pool=K`` trains the ranker on the candidates it will rank: each step fills an
    example's sampled-negative slots with items drawn from the retriever's top K for that user, never
    an item the user interacted with (``training.hard_negatives``; ``train_ranker(retriever=...)``).
    ``hard_negative_count=k`` appends k more to every example (datasets of served impressions have no
    sampled slots); with ``negative_window_s`` they are items a feed could serve at the request time.
    ``listwise_weight=w`` adds w times a listwise softmax over each example's candidates, per observed
    action (``losses.listwise_softmax``), to the ranker's BCE.
    ``ema_decay=d`` keeps an exponential moving average of the parameters beside them
    (``step.ParamAverage``, decay ``min(d, (1 + n) / (10 + n))`` after n updates); validation,
    selection and the exported model use the average, the loss curve the raw parameters. The average
    is part of the checkpointed state, so a resumed run ends on the same average.
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
    retrieval_positions: str = "last"
    dropout: float = 0.0
    residual_dropout: float = 0.0
    full_softmax_max_items: int = 50_000
    negative_window_s: float | None = None
    mask_sampled_negative_actions: bool = False
    hard_negative_pool: int = 0
    hard_negative_count: int = 0
    listwise_weight: float = 0.0
    ema_decay: float = 0.0
    table_optimizer: str = "adamw"
    table_learning_rate: float | None = None
    eval_every: int = 0
    select_best: bool = False
    selection_metric: str | None = None
    early_stopping_patience: int = 0
    eval_batch_size: int = 256
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    init_checkpoint: str | None = None  # an exported model (``model/`` dir) to warm-start from

    def __post_init__(self):
        if isinstance(self.model_overrides, Mapping):
            object.__setattr__(self, "model_overrides", dict(self.model_overrides))
        errors = field_errors(self.to_dict())
        if not errors:  # relations between fields, once each field is of its type and range
            if self.warmup_steps >= self.num_steps:
                errors.append(f"warmup_steps={self.warmup_steps} must be < num_steps={self.num_steps}")
            if self.select_best and not self.eval_every:
                errors.append("select_best needs eval_every > 0 (the evaluations it selects from), got eval_every=0")
            if self.early_stopping_patience and not self.select_best:
                errors.append(
                    f"early_stopping_patience={self.early_stopping_patience} needs select_best=True "
                    "(it stops when the selected metric stops improving)"
                )
            if self.retrieval_positions == "all" and self.retrieval_loss == "sampled":
                errors.append("retrieval_positions='all' trains with the full softmax; got retrieval_loss='sampled'")
        if errors:
            raise ValueError("invalid TrainConfig: " + "; ".join(errors))

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

    @property
    def needs_retriever(self) -> bool:
        """The ranker trains on the retriever's hard negatives or selects on the two stages it serves in."""
        return bool(self.hard_negative_pool) or (self.selection_metric or "").startswith("two_stage_")

    def use_full_softmax(self, num_items: int) -> bool:
        if self.retrieval_loss == "auto":
            return num_items <= self.full_softmax_max_items
        return self.retrieval_loss == "full"

    # -- serialization ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if isinstance(self.model_overrides, Mapping):
            out["model_overrides"] = dict(self.model_overrides)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=str)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Inverse of ``to_dict``; unknown keys raise ValueError."""
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown TrainConfig keys: {unknown}; known: {sorted(_hints(cls))}")
        return cls(**data)

    def replace(self, **changes: Any) -> TrainConfig:
        return TrainConfig.from_dict({**self.to_dict(), **changes})


def field_errors(values: Mapping[str, Any]) -> list[str]:
    """What is wrong with each of ``values`` (TrainConfig fields, all or some) on its own: an unknown name,
    a type, range or choice, the preset, the model overrides. One ``"field=value must be ..."`` per error."""
    hints = _hints(TrainConfig)
    unknown = sorted(set(values) - set(hints))
    errors = [f"unknown TrainConfig keys: {unknown}; known: {sorted(hints)}"] if unknown else []
    for name, value in values.items():
        error = (_type_error(name, value, hints[name]) or _range_error(name, value)) if name in hints else None
        errors += [error] if error else []
    if not errors and ("preset" in values or "model_overrides" in values):
        errors += _model_errors(values.get("preset", TrainConfig.preset), values.get("model_overrides", {}))
    return errors


def _model_errors(preset: str, model_overrides: Mapping[str, Any]) -> list[str]:
    """The preset must exist and the model overrides make a valid ``PhoenixConfig`` of it."""
    try:
        base = PhoenixConfig.preset(preset)
    except ValueError as err:
        return [f"preset={preset!r}: {err}"]
    fields = {k: v for k, v in model_overrides.items() if k not in _HASH_KEYS}
    hints = _hints(PhoenixConfig)
    numeric = {k: v for k, v in model_overrides.items() if hints.get(k) in (int, float, bool)}
    errors = [e for k, v in numeric.items() if (e := _type_error(f"model_overrides.{k}", v, hints[k]))]
    if errors:
        return errors
    try:
        base.replace(**fields)
    except (TypeError, ValueError) as err:
        return [f"model_overrides={fields} on preset {preset!r}: {err}"]
    return []


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


_TYPE_NAMES = {int: "an int", float: "a number", bool: "True or False", str: "a string", type(None): "None"}


def _type_error(name: str, value: Any, hint: Any) -> str | None:
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if any(_is_instance(value, t) for t in options):
        return None
    allowed = " or ".join(_TYPE_NAMES.get(t, f"a {getattr(typing.get_origin(t) or t, '__name__', t)}") for t in options)
    return f"{name}={value!r} must be {allowed}"


def _is_instance(value: Any, t: Any) -> bool:
    if t is Any:
        return True
    if t is type(None):
        return value is None
    if isinstance(value, bool) or t is bool:  # bool is an int to Python, not to a config
        return isinstance(value, bool) and t is bool
    if t in (int, float):
        return isinstance(value, numbers.Integral if t is int else numbers.Real)
    origin = typing.get_origin(t) or t
    if origin is tuple:
        return isinstance(value, tuple | list)
    return isinstance(origin, type) and isinstance(value, origin)


def _range_error(name: str, value: Any) -> str | None:
    """``value`` is of the field's type here."""
    if name in _CHOICES:
        return None if value in _CHOICES[name] else f"{name}={value!r} must be one of {_CHOICES[name]}"
    if value is None or isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    if not math.isfinite(value):
        return f"{name}={value!r} must be finite"
    if name in _AT_LEAST_1 and value < 1:
        return f"{name}={value!r} must be >= 1"
    if name in _AT_LEAST_0 and value < 0:
        return f"{name}={value!r} must be >= 0"
    if name in _ABOVE_0 and not value > 0:
        return f"{name}={value!r} must be > 0"
    if name in _FRACTIONS and not 0 <= value <= 1:
        return f"{name}={value!r} must be in [0, 1]"
    if name in _BELOW_1 and not 0 <= value < 1:
        return f"{name}={value!r} must be in [0, 1)"
    return None


def model_config_for(cfg: TrainConfig, seqs: EngagementSequences) -> PhoenixConfig:
    """``cfg.model_config`` with the data's HashSpec and its history / candidate lengths."""
    return cfg.model_config(seqs.hash_spec, seqs.history_len, seqs.candidate_len)
