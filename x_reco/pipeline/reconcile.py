"""Explanations reconcile with what was served (candidate-pipeline spec §18 item 10).

``reconcile(pipeline, result)`` checks one served feed's explanations against its own columns and
returns the problems it finds (an empty list: every identity holds):

* the fate ledger gives every retrieved candidate exactly one terminal state, and ``served`` states
  are exactly the served posts;
* every stage keeps or removes each of its inputs: ``n_in = n_kept + n_removed``;
* per served post, the contributions the explanation shows sum to the combined score,
  ``Σ_s w_s p_s = c`` (≤ 1e-9), whose offset is the served ``weighted_score``; and
  ``score = base · [cold start] · div · oon`` (≤ 1e-12), with the factors the feed printed, where
  ``base = offset(c)``, or with a retrieval weight b > 0 ``exp(two_stage_score(c, two_tower_score, b))``
  over the request's scored pool;
* ``why_not`` names the right state for a removed, a non-selected and a never-retrieved post.

The offset and the product are written out here again rather than called from ``scoring``, so that a
change to the scorer that is not mirrored in the explanation shows up as a mismatch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from x_reco.models.ranker import two_stage_score
from x_reco.pipeline import rules as R
from x_reco.pipeline.explain import fate_ledger
from x_reco.pipeline.framework import FeedResult

SUM_TOL = 1e-9
SCORE_TOL = 1e-12


def _offset(c: float, p: float, n: float, t: float) -> float:
    if t == 0:
        return max(c, 0.0)
    return (c + n) / t * R.NEGATIVE_SCORES_OFFSET if c < 0 else c + R.NEGATIVE_SCORES_OFFSET


def reconcile(pipeline, result: FeedResult) -> tuple[list[str], dict[str, Any]]:
    """(problems, counts) of one served feed; ``pipeline`` is the ``FeedPipeline`` that served it."""
    problems: list[str] = []
    rid = result.query.request.request_id
    try:
        ledger = fate_ledger(result)
    except AssertionError as exc:
        return [f"{rid}: ledger: {exc}"], {}
    served_rows = {int(r) for r in result.served["row"]}
    ledger_served = {r for r, e in ledger.items() if e["state"] == "served"}
    if ledger_served != served_rows:
        problems.append(f"{rid}: ledger marks {len(ledger_served)} rows served, the feed has {len(served_rows)}")
    for s in result.trace:
        if s.enabled and s.n_in != s.n_kept + s.n_removed:
            problems.append(f"{rid}: {s.stage}/{s.component}: n_in {s.n_in} != {s.n_kept} kept + {s.n_removed} removed")
    problems += _score_identities(pipeline, result)
    problems += _why_not(pipeline, result, ledger)
    states = {k: sum(e["state"] == k for e in ledger.values()) for k in sorted({e["state"] for e in ledger.values()})}
    return problems, {"retrieved": len(ledger), "served": len(served_rows), **states}


def _score_identities(pipeline, result: FeedResult) -> list[str]:
    if not len(result.served) or result.scored.probs is None:
        return []
    ranked = pipeline._rank(result, pipeline.weights)  # the explanation's contributions
    pos = {int(r): i for i, r in enumerate(result.scored["row"])}
    p, n, t = ranked.pnt
    weight = pipeline.retrieval_weight
    pool = result.scored
    blended = two_stage_score(ranked.combined, pool["two_tower_score"], weight) if weight else None
    out = []
    for j in range(len(result.served)):
        rec = result.served.record(j)
        i = pos[int(rec["row"])]
        c = float(ranked.contributions[i].sum())
        where = f"{result.query.request.request_id} position {j} ({rec['post_id']})"
        if abs(c - float(ranked.combined[i])) > SUM_TOL:
            out.append(f"{where}: contributions sum to {c!r}, combined score {float(ranked.combined[i])!r}")
        weighted = _offset(c, p, n, t)
        if abs(weighted - float(rec["weighted_score"])) > SUM_TOL:
            out.append(f"{where}: offset(Σ w·p) = {weighted!r}, served weighted_score {float(rec['weighted_score'])!r}")
        if rec["cold_start_boosted"]:
            base = float(ranked.pre_diversity_score[i])
        elif blended is not None:
            base = float(np.exp(blended[i]))
        else:
            base = float(rec["weighted_score"])
        score = base * float(rec["diversity_multiplier"]) * float(rec["oon_multiplier"])
        if abs(score - float(rec["score"])) > SCORE_TOL * max(1.0, abs(score)):
            out.append(f"{where}: base·[cold start]·div·oon = {score!r}, served score {float(rec['score'])!r}")
    return out


def _why_not(pipeline, result: FeedResult, ledger: dict[int, dict[str, Any]]) -> list[str]:
    """why_not answers a removed, a non-selected and a never-retrieved post with its ledger state."""
    out = []
    by_state: dict[str, str] = {}
    for entry in ledger.values():
        if entry["state"] in ("removed", "not_selected") and entry["state"] not in by_state:
            # a post retrieved twice is explained by its furthest copy; pick posts retrieved once
            if sum(e["post_id"] == entry["post_id"] for e in ledger.values()) == 1:
                by_state[entry["state"]] = entry["post_id"]
    for state, post in sorted(by_state.items()):
        got = pipeline.why_not(result, post)["state"]
        if got != state:
            out.append(f"{result.query.request.request_id}: why_not({post}) says {got}, the ledger {state}")
    retrieved = set(ledger[r]["post_id"] for r in ledger)
    never = next((str(p) for p in pipeline.catalogue.item_ids if str(p) not in retrieved), None)
    if never is not None:
        answer = pipeline.why_not(result, never)
        if answer["state"] != "never_retrieved" or not answer.get("reasons"):
            out.append(f"{result.query.request.request_id}: why_not({never}) (never retrieved) says {answer}")
    return out
