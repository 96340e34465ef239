"""The For You feed of a partition: its champion checkpoints behind the candidate pipeline.

``build_pipeline(partition, storage)`` loads what ``make demo`` wrote and returns a ``FeedPipeline``
with ``serve``, ``rescore``, ``why_not`` and ``report``; ``FeedPipeline(...)`` builds the same
object from in-memory parts (tests, assets). One pipeline object for the CLI and the assets.

Partition profiles (§13) come from the dataset's registry record: the synthetic world runs Thunder
and Phoenix with every filter and author diversity; partitions without the social tables run
Phoenix out-of-network only, with the filters their data supports and VF disabled.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from x_reco.common.actions import ACTION_INDEX
from x_reco.configs.weights import WeightSet
from x_reco.data.registry import dataset_spec
from x_reco.eval.ranker import retrieval_weight_of
from x_reco.inference.calibrate import CalibrationError, moments_from_arrays
from x_reco.inference.params import serving_model
from x_reco.inference.quantize import VARIANT_BUILDERS, make_variant
from x_reco.models.checkpoint import restore_checkpoint
from x_reco.models.ranker import PhoenixRanker
from x_reco.models.retriever import PhoenixRetriever
from x_reco.pipeline import hydrators as H
from x_reco.pipeline.attribution import Attribution, attribute
from x_reco.pipeline.explain import compare_feeds, fate_ledger, near_miss, top_contributions
from x_reco.pipeline.filters import post_selection_filters, pre_scoring_filters
from x_reco.pipeline.framework import CandidatePipeline, FeedResult
from x_reco.pipeline.phoenix import PhoenixScorer, PhoenixSource, ServingCatalogue
from x_reco.pipeline.rules import DEFAULT_RULES, RuleSet, rule_set
from x_reco.pipeline.scoring import RankingScorer, rank_scores
from x_reco.pipeline.sources import ThunderSource
from x_reco.pipeline.state import ServedLog, ServingTables, TableState
from x_reco.pipeline.store import CheckpointMismatchError, ServingData, ServingDataError, load_serving_data
from x_reco.pipeline.thunder import ThunderStore, tombstones
from x_reco.pipeline.types import FeedRequest, Query
from x_reco.training.defaults import catalogue_window_s

# Filters a partition without the synthetic world's social tables can run (§13).
OON_ONLY_FILTERS = frozenset({"DropDuplicates", "CoreDataHydration", "Age", "PreviouslySeen", "PreviouslyServed"})
EMPTY_HISTORY_MODES = ("score", "upstream")
ROUNDING_MODES = ("auto", "calibrated", "nearest")


def _posts_table(items):
    return items.rename(columns={"item_id": "post_id"})


class ServedLogSideEffect:
    """§12: append the served posts (and their conversation ancestors) to the served log."""

    name = "ServedLogSideEffect"

    def __init__(self, log: ServedLog, weight_set: str, rules: str, versions: dict[str, str]):
        self.log, self.weight_set, self.rules, self.versions = log, weight_set, rules, versions

    def enabled(self, query: Query) -> bool:
        return True

    def run(self, query: Query, result: FeedResult) -> None:
        self.log.record(
            query.request, result.served, weight_set=self.weight_set, rules=self.rules, versions=self.versions
        )


@dataclasses.dataclass(frozen=True)
class FeedOptions:
    """Everything that changes what a pipeline serves, besides the data and checkpoints."""

    rules: str = DEFAULT_RULES
    weights: str = "published"
    strict: bool = False
    backfill: bool = False
    empty_history: str = "score"  # "score": user token alone, flag cold_user; "upstream": no Phoenix
    mask_unobserved: bool = True
    prefix_cache_slots: int = 256  # users whose prefix K/V is kept across requests (0: no cache)
    warm_candidates: tuple[int, ...] = ()  # candidate counts compiled at construction (serving: up to 2048)
    # The ranker's weight/table format (x_reco.inference.quantize): serving runs the INT8 variant of the
    # champion by default; "f32" is the trained model itself (the parity tests of §18 item 2 use it).
    variant: str = "w8+t8"
    # How a w8 variant's int8 weights are rounded: "calibrated" against the partition's stored
    # ranker_calibration (error-compensating, x_reco.inference.calibrate), "nearest", or "auto":
    # calibrated where moments of this champion ranker are stored, else nearest.
    rounding: str = "auto"
    # The blend of the ranker's combined score with the retriever's u·v (scoring.rank_scores): None
    # serves with the weight the ranker checkpoint's validation fit (eval.ranker.retrieval_weight_of);
    # 0.0 orders by the ranker alone.
    retrieval_weight: float | None = None

    def __post_init__(self):
        rule_set(self.rules)
        if self.retrieval_weight is not None and not 0.0 <= self.retrieval_weight <= 1.0:
            raise ValueError(f"retrieval_weight {self.retrieval_weight!r} must be in [0, 1] (or None)")
        if self.empty_history not in EMPTY_HISTORY_MODES:
            raise ValueError(f"empty_history {self.empty_history!r} not in {EMPTY_HISTORY_MODES}")
        if self.variant not in VARIANT_BUILDERS:
            raise ValueError(f"variant {self.variant!r} not in {sorted(VARIANT_BUILDERS)}")
        if self.rounding not in ROUNDING_MODES:
            raise ValueError(f"rounding {self.rounding!r} not in {ROUNDING_MODES}")


class FeedPipeline:
    """A partition's feed: the candidate pipeline over its data and champion checkpoints."""

    def __init__(
        self,
        data: ServingData,
        retriever: PhoenixRetriever,
        ranker: PhoenixRanker,
        options: FeedOptions = FeedOptions(),
        versions: dict[str, str] | None = None,
        retrieval_weight: float = 0.0,
    ):
        """``retrieval_weight``: the ranker checkpoint's (``eval.ranker.retrieval_weight_of``), used unless
        ``options.retrieval_weight`` sets another."""
        if options.backfill:
            raise NotImplementedError("backfill=True (§11) is not built; upstream runs with it off")
        self.data, self.options = data, options
        self.partition = data.partition
        self.spec = dataset_spec(data.partition)
        self.rules: RuleSet = rule_set(options.rules)
        seqs = data.sequences
        self.catalogue = ServingCatalogue.from_sequences(seqs)
        self.window_s = catalogue_window_s(data.manifest)
        self.social = bool(data.social)
        self.versions = dict(versions or {})
        profile = self.spec.serving
        # -- data and state
        social = data.social
        posts = _posts_table(data.items)
        deleted = {}
        self.thunder: ThunderStore | None = None
        if self.social:
            created = posts.set_index("post_id")["created_ts"]
            deleted = tombstones(social["post_events"], social["post_links"], created)
            if profile.in_network:
                self.thunder = ThunderStore.from_tables(
                    posts, social["post_links"], social["post_media"], social["post_events"]
                )
        tables = ServingTables(data.partition, data.items, data.events, data.users, dict(social))
        self.state = TableState(tables, seqs.catalogue, seqs.observed_mask, seqs.history_len, deleted_at=deleted)
        # -- models
        index = data.index
        if index is None or str(index.get("param_version", "")) != self.versions.get("retriever", ""):
            from x_reco.eval.retrieval import catalogue_index  # the champion's own index

            index = catalogue_index(retriever, seqs, self.versions.get("retriever", ""))
        phoenix = PhoenixSource(retriever, self.catalogue, index["vectors"], index["mask"], self.window_s)
        self.phoenix = phoenix
        self.retrieval_weight = float(
            retrieval_weight if options.retrieval_weight is None else options.retrieval_weight
        )
        self.source_model = serving_model(ranker)  # f32, the checkpoint as trained
        calibration = self._calibration(options)
        self.ranker_model = make_variant(self.source_model, options.variant, calibration)
        self.scorer = PhoenixScorer(
            self.ranker_model,
            self.catalogue,
            self.rules.signals,
            cache_slots=options.prefix_cache_slots,
            warm_candidates=options.warm_candidates,
            retrieval=phoenix if self.retrieval_weight else None,
        )
        self.weights = self._weights(options.weights)
        sources = {"phoenix": phoenix} if profile.out_of_network else {}
        if self.thunder is not None:
            sources["thunder"] = ThunderSource(self.thunder)
        disabled = frozenset() if self.social else frozenset(self.rules.filters) - OON_ONLY_FILTERS
        self.served_log = ServedLog()
        self.pipeline = CandidatePipeline(
            query_hydrators=H.query_hydrators(self.state, self.served_log),
            sources=[sources[name] for name in self.rules.source_order if name in sources],
            hydrators=H.candidate_hydrators(self.state),
            filters=pre_scoring_filters(self.rules, disabled=disabled, window_s=self.window_s),
            scorers=[
                _ColdUserGate(self.scorer, options.empty_history),
                self.ranking_scorer(self.weights),
            ],
            post_selection_hydrators=H.post_selection_hydrators(self.state) if self.social else (),
            post_selection_filters=post_selection_filters(
                self.rules, options.strict, disabled=frozenset() if self.social else frozenset({"VFFilter"})
            ),
            side_effects=[ServedLogSideEffect(self.served_log, repr(self.weights), self.rules.name, self.versions)],
            strict=options.strict,
        )
        if options.empty_history == "upstream":
            phoenix.skip_cold_users = True

    # -- configuration -------------------------------------------------------------------------

    def _calibration(self, options: FeedOptions) -> dict[str, np.ndarray] | None:
        """The stored w8 calibration moments of this champion ranker, or None (round to nearest)."""
        if "w8" not in options.variant.split("+") or options.rounding == "nearest":
            return None
        stored, where = self.data.calibration, self.data.calibration_file or "ranker_calibration"
        version = self.versions.get("ranker")
        if stored is None:
            if options.rounding == "calibrated":
                raise ServingDataError(
                    f"rounding='calibrated' needs {where}: materialize ranker_calibration "
                    f"(`dg launch --job serving_job --partition {self.partition}`)"
                )
            return None
        try:
            return moments_from_arrays(stored, where, version)
        except CalibrationError as err:
            if options.rounding == "calibrated":
                raise ServingDataError(str(err)) from None
            return None  # auto: moments of another ranker (a champion change since): round to nearest

    def ranking_scorer(self, weights: WeightSet) -> RankingScorer:
        """The pipeline's RankingScorer under ``weights``: its rules, diversity and retrieval weight."""
        return RankingScorer(
            weights, self.rules, diversity=self.spec.serving.author_diversity, retrieval_weight=self.retrieval_weight
        )

    def _weights(self, name: str | WeightSet) -> WeightSet:
        weights = name if isinstance(name, WeightSet) else WeightSet.named(name)
        return weights.masked(self.unobserved_signals) if self.options.mask_unobserved else weights

    @property
    def unobserved_signals(self) -> tuple[str, ...]:
        """Signals whose head column is outside this partition's objective (``DatasetSpec.objective_actions``,
        §13 mask_unobserved): never trained on here or, like MovieLens' not_interested, observed only
        given a watch. The same heads the two-stage evaluation leaves out (``eval.ranker.objective_weights``)."""
        names = self.ranker_model.config.output_action_names
        objective = set(self.spec.objective_actions)
        out = []
        for signal, col in self.scorer.columns.items():
            if col is None:
                continue
            action = names[col]
            if action in ACTION_INDEX and action not in objective:
                out.append(signal)
        return tuple(out)

    # -- serving -------------------------------------------------------------------------------

    def request(self, user_id: str, t: int | None = None, page: int = 1) -> FeedRequest:
        """A request for ``user_id`` at ``t`` (default: the user's first test-split request)."""
        self.state.check_user(str(user_id))
        if t is None:
            t = self.state.default_request_time(user_id)
        lo, hi = self.time_range
        if not lo <= int(t) <= hi:
            raise ValueError(
                f"t={int(t)} is outside the {self.partition} data: its events span [{lo}, {hi - self._slack}] "
                f"(requests up to {self._slack} s after the last event are allowed)"
            )
        if page < 1:
            raise ValueError(f"page must be >= 1, got {page}")
        return FeedRequest(self.partition, str(user_id), int(t), page=page)

    @property
    def time_range(self) -> tuple[int, int]:
        """Request times this data can answer: from its first event to a day after its last."""
        ts = self.data.events["ts"]
        return int(ts.min()), int(ts.max()) + self._slack

    _slack = 86_400

    def serve(self, request: FeedRequest) -> FeedResult:
        if request.partition != self.partition:
            raise ValueError(f"request for {request.partition!r} sent to the {self.partition!r} pipeline")
        return self.pipeline.run(Query(request))

    def rescore(self, result: FeedResult, weight_sets) -> dict[str, dict[str, Any]]:
        """Re-rank ``result``'s scored pool under other weight sets from its cached probabilities (§15.2):
        no model call. Per set: the served ids and Jaccard@35 / RBO / Kendall τ against ``result``, and
        the entering / leaving posts with their per-signal contribution deltas."""
        calls = self.scorer.calls
        pool = result.scored
        base = self._rank(result, self.weights)
        out = {}
        for name in weight_sets:
            weights = self._weights(name)
            other = self.pipeline.rerank(result.query, pool, [self.ranking_scorer(weights)])
            contrib = self._rank(result, weights).contributions
            out[repr(weights)] = {
                "served": [str(p) for p in other.served["post_id"]],
                **compare_feeds(
                    list(result.served["post_id"]),
                    list(other.served["post_id"]),
                    pool["post_id"],
                    base.contributions,
                    contrib,
                    self.rules.signals,
                ),
            }
        assert self.scorer.calls == calls, "counterfactual re-ranking must not call the model"
        return out

    def _rank(self, result: FeedResult, weights: WeightSet):
        pool = result.scored
        return rank_scores(
            pool.probs,
            pool.signal_names,
            pool,
            result.query,
            weights,
            self.rules,
            self.spec.serving.author_diversity,
            retrieval_weight=self.retrieval_weight,
        )

    # -- explanations --------------------------------------------------------------------------

    def why_not(self, result: FeedResult, post_id: str) -> dict[str, Any]:
        """Why ``post_id`` is (not) in the feed: its terminal state, near misses, or why it was never
        retrieved (§15.1)."""
        ledger = fate_ledger(result)
        rows = [r for r, e in ledger.items() if e["post_id"] == post_id]
        if rows:
            # A post retrieved twice: the copy that went furthest explains it.
            rows.sort(key=lambda r: ledger[r]["state"] == "removed" and ledger[r]["filter"] == "DropDuplicates")
            entry = dict(ledger[rows[0]])
            if entry["state"] in ("not_selected", "truncated"):
                entry["near_miss"] = near_miss(result, rows[0])
            return entry
        return {"post_id": post_id, "state": "never_retrieved", "reasons": self._never_retrieved(result, post_id)}

    def attribute(self, result: FeedResult, top: int = 3) -> Attribution:
        """Leave-one-out history attribution of every served post (§15.5): ``Δ_e = c(post | H) − c(post | H \\ e)``
        per history event, through this pipeline's ranker and prefix cache; ``top`` events per post reported."""
        return attribute(result, self.scorer, self.weights, self.rules, top)

    def _never_retrieved(self, result: FeedResult, post_id: str) -> list[str]:
        q = result.query
        t = q.t
        reasons = []
        item = self.catalogue.item_index.get(post_id)
        if self.thunder is not None:
            status = self.thunder.status(post_id, t)
            if status != "live":
                reasons.append(f"not live in Thunder at t: {status}")
        if item is None:
            return reasons + ["not in the candidate index (no such post in the catalogue)"]
        created = int(self.catalogue.item_created_ts[item])
        if created > t:
            reasons.append(f"created after t ({created} > {t})")
        elif self.window_s and t - created > self.window_s:
            reasons.append(f"outside the {self.window_s / 3600:.0f} h window (age {(t - created) / 3600:.1f} h)")
        author = str(self.catalogue.author_ids[self.catalogue.item_author_idx[item]])
        if self.thunder is not None:
            reasons.append(f"author {author} {'is' if author in q.followed_ids else 'is not'} followed at t")
        debug = result.debug.get(self.phoenix.name)
        if debug is not None:
            scores, eligible = debug["scores"], debug["eligible"]
            if eligible[item]:
                rank = int(np.sum(np.where(eligible, scores, -np.inf) > scores[item]))
                reasons.append(
                    f"Phoenix retrieval rank {rank} > {debug['k']} returned (u·v = {float(scores[item]):.4f})"
                )
        return reasons

    def report(
        self, result: FeedResult, timings: bool = False, ledger: bool = False, attribution: Attribution | None = None
    ) -> dict[str, Any]:
        """The feed as plain data (what ``x-reco feed`` prints): header, served posts with their top-3
        contributions (and, given ``attribute(result)``, their top history events), and the funnel.
        Floats at full precision; latencies only with ``timings``."""
        q = result.query
        ranked = self._rank(result, self.weights)
        pos = {int(r): i for i, r in enumerate(result.scored["row"])}
        top = top_contributions(ranked.contributions, self.rules.signals)
        served = []
        for p in range(len(result.served)):
            rec = result.served.record(p)
            i = pos[rec["row"]]
            served.append(
                {
                    "position": p,
                    "post_id": rec["post_id"],
                    "author_id": rec["author_id"],
                    "network": "IN" if rec["in_network"] else "OON",
                    "sources": list(rec["retrieval_sources"]),
                    "score": rec["score"],
                    "weighted": rec["weighted_score"],
                    "two_tower": rec["two_tower_score"],
                    "diversity_k": rec["diversity_k"],
                    "diversity_multiplier": rec["diversity_multiplier"],
                    "oon_multiplier": rec["oon_multiplier"],
                    "cold_start_boosted": rec["cold_start_boosted"],
                    "top_contributions": [[s, v] for s, v in top[i]],
                }
            )
        funnel = []
        for s in result.trace:
            row = {"stage": s.stage, "component": s.component, "enabled": s.enabled, "n_in": s.n_in}
            row |= {"n_kept": s.n_kept, "n_removed": s.n_removed, "error": s.error}
            if timings:
                row |= {"latency_us": s.latency_us, "offset_us": s.offset_us}
            funnel.append(row)
        out = {
            "partition": self.partition,
            "user_id": q.user_id,
            "t": q.t,
            "page": q.request.page,
            "request_id": q.request.request_id,
            "rules": self.rules.name,
            "weights": repr(self.weights),
            "checkpoints": {k: v for k, v in sorted(self.versions.items())},
            "ranker_variant": self.ranker_model.variant,
            "ranker_rounding": self.ranker_model.rounding,
            "retrieval_weight": self.retrieval_weight,
            "absent_signals": list(self.scorer.absent),  # no head column: contribute 0 (§9.2)
            "masked_weights": list(self.unobserved_signals) if self.options.mask_unobserved else [],
            "cold_user": q.cold_user,
            "history_length": q.history.length if q.history is not None else 0,
            "counts": {
                "retrieved": len(result.retrieved),
                "scored": len(result.scored),
                "removed": len(result.removed),
                "served": len(result.served),
            },
            "served": served,
            "funnel": funnel,
        }
        if attribution is not None:
            if attribution.post_ids != tuple(p["post_id"] for p in served):
                raise ValueError("attribution of another feed: its served posts differ from this result's")
            for entry, events in zip(served, attribution.as_report(), strict=True):
                entry["attribution"] = events
        if ledger:
            out["ledger"] = {str(k): v for k, v in sorted(fate_ledger(result).items())}
        return out


class _ColdUserGate:
    """PhoenixScorer, except for cold users under ``empty_history="upstream"`` (scores stay None)."""

    def __init__(self, scorer: PhoenixScorer, empty_history: str):
        self.scorer, self.empty_history = scorer, empty_history
        self.name = scorer.name

    def enabled(self, query: Query) -> bool:
        return not (query.cold_user and self.empty_history == "upstream")

    def score(self, query, cands):
        return self.scorer.score(query, cands)


def build_pipeline(
    partition: str,
    storage: str,
    rules: str = DEFAULT_RULES,
    weights: str = "published",
    strict: bool = False,
    backfill: bool = False,
    **options: Any,
) -> FeedPipeline:
    """The partition's feed from storage root ``storage``: loads the champion pair named in
    ``champions/<partition>.json`` and refuses checkpoints whose HashSpec differs from the data's."""
    data = load_serving_data(storage, partition)
    seqs = data.sequences
    models, versions, weight = {}, {}, 0.0
    for kind in ("retriever", "ranker"):
        path = data.champion[kind]
        try:
            model, meta = restore_checkpoint(path, hash_spec=seqs.hash_spec)
        except FileNotFoundError as exc:
            raise CheckpointMismatchError(f"champion {kind} checkpoint {path} is missing: {exc}") from exc
        except ValueError as exc:
            raise CheckpointMismatchError(f"champion {kind} {path} does not match {partition}'s data: {exc}") from exc
        want = PhoenixRetriever if kind == "retriever" else PhoenixRanker
        if not isinstance(model, want):
            raise CheckpointMismatchError(f"champion {kind} {path} is a {type(model).__name__}")
        models[kind], versions[kind] = model, str(meta.get("param_version", ""))
        weight = retrieval_weight_of(meta) if kind == "ranker" else weight
    opts = FeedOptions(rules=rules, weights=weights, strict=strict, backfill=backfill, **options)
    return FeedPipeline(data, models["retriever"], models["ranker"], opts, versions, retrieval_weight=weight)
