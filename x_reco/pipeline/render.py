"""Plain-text rendering of a feed report (``FeedPipeline.report``) for ``x-reco feed``."""

from __future__ import annotations

import datetime as dt
from typing import Any


def _when(t: int) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _short(version: str) -> str:
    return version[:12] if version else "?"


def render_feed(report: dict[str, Any], timings: bool = False) -> str:
    r = report
    ck = r["checkpoints"]
    lines = [
        f"For You feed · {r['partition']} · user {r['user_id']} · t {r['t']} ({_when(r['t'])}) · page {r['page']}"
        f" · request {r['request_id']}",
        f"checkpoints: retriever {_short(ck.get('retriever', ''))}  ranker {_short(ck.get('ranker', ''))}"
        f" ({r['ranker_variant']}{', ' + r['ranker_rounding'] + ' rounding' if r.get('ranker_rounding') else ''})"
        f" · rules {r['rules']} · weights {r['weights']}",
        f"history: {r['history_length']} events{' (cold user: user token alone)' if r['cold_user'] else ''}"
        f" · absent signals: {', '.join(r['absent_signals']) or 'none'}"
        f" · masked weights: {', '.join(r['masked_weights']) or 'none'}",
    ]
    b = float(r.get("retrieval_weight", 0.0))
    if b:
        lines.append(
            f"order: exp({1 - b:.2f}·z(weighted) + {b:.2f}·z(u·v)) × div × oon  (retrieval weight {b:.2f}, z over the"
            " scored candidates)"
        )
    lines.append("")
    header = f"{'pos':>3}  {'post':<10} {'author':<14} {'net':<3} {'sources':<15} {'score':>9} {'weighted':>9}"
    header += f"{' u·v':>8}" if b else ""
    header += f" {'×div(k)':>10} {'×oon':>5}  top contributions (w·p)"
    lines += [header, "-" * len(header)]
    for p in r["served"]:
        div = f"{p['diversity_multiplier']:.3f}({p['diversity_k']})"
        top = ", ".join(f"{s} {v:+.3f}" for s, v in p["top_contributions"])
        mark = "*" if p["cold_start_boosted"] else " "
        lines.append(
            f"{p['position']:>3}{mark} {p['post_id']:<10} {str(p['author_id'])[:14]:<14} {p['network']:<3}"
            f" {'+'.join(p['sources']):<15} {p['score']:>9.4f} {p['weighted']:>9.4f}"
            + (f" {p['two_tower']:>7.4f}" if b else "")
            + f" {div:>10}"
            f" {p['oon_multiplier']:>5.2f}  {top}"
        )
        if "attribution" in p:
            lines.append(f"      because: {_because(p['attribution'])}")
    if not r["served"]:
        lines.append("(no eligible posts)")
    c = r["counts"]
    lines += [
        "",
        f"served {c['served']} · scored {c['scored']} · removed {c['removed']} · retrieved {c['retrieved']}"
        + ("   (* cold-start boost)" if any(p["cold_start_boosted"] for p in r["served"]) else ""),
        "funnel:",
    ]
    for s in r["funnel"]:
        if not s["enabled"]:
            continue
        if s["stage"] in ("source",):
            detail = f"+{s['n_kept']}"
        elif s["n_removed"]:
            detail = f"-{s['n_removed']}"
        else:
            continue
        extra = f"  {s['latency_us'] / 1000:.2f} ms" if timings and "latency_us" in s else ""
        err = f"  ERROR {s['error']}" if s["error"] else ""
        lines.append(f"  {s['stage']:<22} {s['component']:<28} {detail:>6}{extra}{err}")
    if timings:
        total = sum(s.get("latency_us", 0.0) for s in r["funnel"])
        lines.append(f"  total stage time {total / 1000:.1f} ms")
    if timings and "attribution_cost" in r:
        a = r["attribution_cost"]
        lines.append(f"  attribution {a['ms']:.1f} ms, {a['ranker_calls']} ranker call(s), prefix {a['prefix']}")
    return "\n".join(lines)


def _because(events: list[dict[str, Any]]) -> str:
    """§15.5 top events: "favorite p000123 (slot 4) Δ+0.812 41%", largest |Δ| first."""
    parts = [
        f"{'+'.join(e['actions']) or 'event'} {e['post_id']} (slot {e['position']}) Δ{e['delta']:+.3f} {e['share']:.0%}"
        for e in events
    ]
    return " · ".join(parts) or "no history"


def render_why(post_id: str, answer: dict[str, Any]) -> str:
    state = answer["state"]
    if state == "served":
        text = f"served at position {answer['position']}"
    elif state == "removed":
        text = f"removed by {answer['filter']} ({answer['stage']}): {answer['reason']}"
    elif state == "dropped_post_selection":
        text = f"dropped after selection by {answer['filter']}: {answer['reason']}"
    elif state == "truncated":
        text = f"selected at rank {answer['rank']} but truncated (only the first 35 are served)"
    elif state == "not_selected":
        gap = answer.get("gap_to_cutoff")
        text = f"not selected: rank {answer['rank']}" + (f", {gap:.4g} below the top-50 cutoff" if gap else "")
    else:
        text = "never retrieved: " + "; ".join(answer.get("reasons", ())) or "never retrieved"
    notes = answer.get("near_miss") or []
    flags = answer.get("flags") or []
    out = f"why {post_id}: {text}"
    if notes:
        out += "\n  near miss: " + "; ".join(notes)
    if flags:
        out += "\n  flags: " + ", ".join(flags)
    return out


def render_compare(compare: dict[str, dict[str, Any]]) -> str:
    lines = ["", f"{'weight set':<34} {'jaccard@35':>10} {'rbo':>6} {'tau':>6} {'in':>4} {'out':>4}"]
    for name, c in compare.items():
        lines.append(
            f"{name:<34} {c['jaccard@35']:>10.3f} {c['rbo']:>6.3f} {c['kendall_tau']:>6.3f}"
            f" {len(c['entering']):>4} {len(c['leaving']):>4}"
        )
        for e in c["entering"][:3]:
            lines.append(f"    + {e['post_id']} at {e['position']}: {_deltas(e)}")
        for e in c["leaving"][:3]:
            lines.append(f"    - {e['post_id']} was {e['position']}: {_deltas(e)}")
    return "\n".join(lines)


def _deltas(entry: dict[str, Any]) -> str:
    return ", ".join(f"Δ{s} {v:+.3f}" for s, v in entry.get("delta", {}).items()) or "same contributions"
