"""Benchmark report: §3 floors, repeat flags, §5.4 caching accounting, ``table.md`` and the two plots."""

from __future__ import annotations

import collections

import numpy as np

from x_reco.common.plotting import figure_png, subplots
from x_reco.configs.phoenix import PhoenixConfig

# H100 planning figures (inference spec §3) and xAI's service-level ranges (§4.2), in ms.
PEAK_FLOPS = 800e12
PEAK_BYTES = 3e12
XAI_RANKING_MS = (50.0, 100.0)  # scoring 500 candidates
XAI_RETRIEVAL_MS = (20.0, 50.0)  # top 1,000 from millions
REPEAT_FLAG = 0.10


def _token_flops(cfg: PhoenixConfig) -> float:
    """Trunk matmul FLOPs per token (all layers): QKV + O + gated FFN."""
    d, hq, hkv, dk, f = cfg.emb_size, cfg.num_q_heads, cfg.num_kv_heads, cfg.key_size, cfg.ffn_size
    return cfg.num_layers * 2 * (d * (hq + 2 * hkv) * dk + hq * dk * d + 3 * d * f)


def _attn_flops(cfg: PhoenixConfig, keys: float) -> float:
    """QK^T + AV FLOPs of one query over ``keys`` keys (all layers)."""
    return cfg.num_layers * 2 * 2 * cfg.num_q_heads * cfg.key_size * keys


def request_flops(cfg: PhoenixConfig, path: str, b: int, s: int, n: int) -> float:
    """Analytic FLOPs of one request (§3 conventions): split = prefix encode + N x (P+1) keys; dense = (P+N)^2."""
    d, (nu, ni, na) = cfg.emb_size, cfg.num_hashes
    p = 1 + s
    proj = 2 * d * d * (nu + s * (ni + na + 2) + n * (ni + na + 1)) + 2 * n * d * cfg.num_actions
    if path == "dense":
        t = p + n
        return b * (t * _token_flops(cfg) + t * _attn_flops(cfg, t) + proj)
    keys = 1 if path == "cached" else 0
    prefix = 0 if path == "cached" else p * _token_flops(cfg) + p * _attn_flops(cfg, p)
    return b * (prefix + n * (_token_flops(cfg) + _attn_flops(cfg, p + keys)) + proj)


def weight_bytes_bf16(cfg: PhoenixConfig) -> float:
    d, (nu, ni, na) = cfg.emb_size, cfg.num_hashes
    per_layer = d * (cfg.num_q_heads + 2 * cfg.num_kv_heads) * cfg.key_size + cfg.num_q_heads * cfg.key_size * d
    per_layer += 3 * d * cfg.ffn_size
    inputs = d * d * (nu + (ni + na + 2) + (ni + na + 1))
    return 2.0 * (cfg.num_layers * per_layer + inputs + d * cfg.num_actions)


def floor_ms(cfg: PhoenixConfig, path: str, b: int, s: int, n: int) -> float:
    """max(FLOPs / 800 TFLOP/s, bytes / 3 TB/s): bf16 weights read once + gathered f32 table rows."""
    ni, na = cfg.num_post_hashes, cfg.num_author_hashes
    rows = b * (cfg.num_user_hashes + (0 if path == "cached" else s * (ni + na)) + n * (ni + na))
    bytes_ = weight_bytes_bf16(cfg) + rows * cfg.emb_size * 4
    return 1e3 * max(request_flops(cfg, path, b, s, n) / PEAK_FLOPS, bytes_ / PEAK_BYTES)


def _key(r: dict) -> tuple:
    return (r["preset"], r["variant"], r["B"], r["S"], r["N"])


def group_repeats(records: list[dict]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = collections.defaultdict(list)
    for r in records:
        groups[_key(r)].append(r)
    return groups


def repeat_flags(records: list[dict]) -> list[dict]:
    """Configurations whose p50s differ across processes by more than 10 %."""
    out = []
    for key, rs in group_repeats(records).items():
        p50s = [r["p50"] for r in rs]
        if len(p50s) >= 2:
            spread = max(p50s) / min(p50s) - 1.0
            out.append({"config": list(key), "p50s": p50s, "spread": spread, "flagged": spread > REPEAT_FLAG})
    return out


def caching_accounting(records: list[dict]) -> list[dict]:
    """§5.4 per cached record: (a) split one pass, (b) chunked (encode included) and cold miss, (c) warm hit."""
    index = {(_key(r)[0],) + _key(r)[2:] + (r["variant"], r["repeat"]): r for r in records}
    out = []
    for r in records:
        if r["variant"] != "cached" or not r.get("cache"):
            continue
        base = (r["preset"], r["B"], r["S"], r["N"])
        split = index.get(base + ("split", r["repeat"]))
        chunked = {
            v: index[base + (v, r["repeat"])]["p50"]
            for (*b, v, rep) in index
            if tuple(b) == base and rep == r["repeat"] and v.startswith("chunked-")
        }
        miss = (r["cache"].get("miss_ms") or {}).get("p50")
        hit = r["p50"]
        row = {
            "preset": r["preset"],
            "B": r["B"],
            "S": r["S"],
            "N": r["N"],
            "repeat": r["repeat"],
            "a_split_ms": split["p50"] if split else None,
            "b_chunked_ms": chunked,
            "b_miss_ms": miss,
            "c_hit_ms": hit,
            "append1_ms": (r["cache"].get("append1_ms") or {}).get("p50"),
        }
        if miss is not None:
            row["expected_ms"] = {str(h): h * hit + (1 - h) * miss for h in (0.0, 0.5, 0.9)}
        out.append(row)
    return out


def headline(raw: dict) -> dict:
    """Flat numeric summary for asset metadata: per configuration the median over repeats of p50/p90/p99
    (ms), pipelined ms and candidates/s; plus device, digests, flagged repeats and output paths."""
    out: dict = {
        "device": raw["metadata"].get("device_label") or raw["metadata"].get("device_kind"),
        "backend": raw["metadata"].get("backend"),
        "source_param_digests": sorted(
            {r["source_param_digest"] for r in raw["records"] if "source_param_digest" in r}
        ),
        "flagged_repeats": sum(f["flagged"] for f in raw.get("repeat_flags", [])),
        "records": len(raw["records"]),
    }
    timing = [r for r in raw["records"] if r.get("kind", "timing") == "timing"]
    for (preset, variant, b, s, n), rs in sorted(group_repeats(timing).items(), key=lambda kv: tuple(map(str, kv[0]))):
        key = f"{preset}/{variant}/B{b}/S{s}/N{n}"
        for stat in ("p50", "p90", "p99", "candidates_per_s"):
            out[f"{key}/{stat}"] = float(np.median([r[stat] for r in rs]))
        pipes = [r["pipelined_ms"] for r in rs if r.get("pipelined_ms") is not None]
        if pipes:
            out[f"{key}/pipelined_ms"] = float(np.median(pipes))
    return out


def _quality_lookup(quality: list[dict]) -> dict[tuple, dict]:
    out = {}
    for q in quality:
        block = q.get("quality", {})
        if "topk" not in block:
            continue
        top10 = block["topk"].get("weighted@10/N1000") or block["topk"].get("weighted@10/N500") or {}
        out[(q.get("preset"), q["variant"])] = {
            "dp": block["probs"]["max_abs"],
            "tau": block["kendall_tau"]["weighted"]["median"],
            "top10": top10.get("overlap"),
            "label": block["label"],
        }
    return out


def _fmt(x, spec=".2f") -> str:
    return "–" if x is None else format(x, spec)


def table_md(raw: dict) -> str:
    """One row per configuration (both repeats shown; >10 % p50 spread marked ⚠)."""
    timing = [r for r in raw["records"] if r.get("kind", "timing") == "timing"]
    quality = _quality_lookup([q for q in raw["records"] if q.get("kind") == "quality" and not q.get("trained")])
    peaks = {
        (m["preset"], m["variant"], m["B"], m["S"], m["N"]): m for m in raw["records"] if m.get("kind") == "memory"
    }
    lines = [
        f"# Inference benchmark — {raw['metadata'].get('device_label') or raw['metadata']['device_kind']}",
        "",
        f"UTC {raw['metadata']['utc']}, backend `{raw['metadata']['backend']}`, git {raw['metadata']['git']}.",
        "Times in ms per request; p50 shows each process repeat. Floor = §3 H100 planning floor. Peak MB: "
        "fresh-process GPU peak_bytes_in_use where probed, else compiled argument + temp bytes. Quality vs "
        "ref-f32 on the same source params (random-init: reported, not gated).",
        "",
        "| preset | variant | B | S | N | bucket | p50 (repeats) | p99 | pipelined | host p50 | compile s | "
        "cand/s | peak MB | floor ms | max Δp / tau / top-10 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, rs in sorted(group_repeats(timing).items(), key=lambda kv: tuple(map(str, kv[0]))):
        preset, variant, b, s, n = key
        rs = sorted(rs, key=lambda r: r["repeat"])
        p50s = [r["p50"] for r in rs]
        flag = " ⚠" if len(p50s) > 1 and max(p50s) / min(p50s) - 1 > REPEAT_FLAG else ""
        r0 = rs[0]
        cfg = PhoenixConfig.preset(preset)
        bucket = r0["bucket"]
        peak = peaks.get((preset, variant, b, s, n))
        peak_mb = None
        if peak and peak.get("after_call"):
            peak_mb = peak["after_call"]["peak_bytes_in_use"] / 2**20
        elif r0.get("memory_analysis"):
            m = r0["memory_analysis"]
            peak_mb = (m.get("argument_size_in_bytes", 0) + m.get("temp_size_in_bytes", 0)) / 2**20
        q = quality.get((preset, variant))
        qtxt = "–" if not q else f"{q['dp']:.2e} / {q['tau']:.3f} / {_fmt(q['top10'], '.3f')}"
        if r0.get("invalid"):
            variant = f"{variant} ✗"
        lines.append(
            f"| {preset} | {variant} | {b} | {s} | {n} | {bucket['B']}×{bucket['S']}×{bucket['N']} | "
            f"{' / '.join(f'{p:.2f}' for p in p50s)}{flag} | {r0['p99']:.2f} | {_fmt(r0['pipelined_ms'])} | "
            f"{r0['host_ms']['p50']:.2f} | {r0['compile_s']:.1f} | {r0['candidates_per_s']:.3g} | "
            f"{_fmt(peak_mb, '.0f')} | "
            f"{floor_ms(cfg, r0['path'], b, s, n):.4f} | {qtxt} |"
        )
    invalid = sorted({r["invalid"] for r in timing if r.get("invalid")})
    lines += [""] + [f"✗ invalid row: {why}" for why in invalid] if invalid else []
    if raw["metadata"].get("run_note"):
        lines += ["", f"Run note: {raw['metadata']['run_note']}"]
    lines += _extra_sections(raw)
    return "\n".join(lines) + "\n"


def _extra_sections(raw: dict) -> list[str]:
    lines = [
        "",
        "## Caching accounting (§5.4)",
        "",
        "| preset | B | S | N | (a) split | (b) chunked | (b) miss: encode+score | (c) hit | h=0 / 0.5 / 0.9 "
        "| append 1 event |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a in raw.get("caching_accounting", []):
        exp = a.get("expected_ms") or {}
        chunked = ", ".join(f"{k}: {v:.2f}" for k, v in a["b_chunked_ms"].items()) or "–"
        lines.append(
            f"| {a['preset']} | {a['B']} | {a['S']} | {a['N']} | {_fmt(a['a_split_ms'])} | {chunked} | "
            f"{_fmt(a['b_miss_ms'])} | {a['c_hit_ms']:.2f} | "
            f"{' / '.join(_fmt(exp.get(h)) for h in ('0.0', '0.5', '0.9'))} | {_fmt(a['append1_ms'])} |"
        )
    retrieval = [r for r in raw["records"] if r.get("kind") == "retrieval"]
    if retrieval:
        lines += [
            "",
            "## Retrieval top-k (§2.6; xAI service-level context: 20–50 ms)",
            "",
            "| corpus | format | B | k | p50 (repeat) | p99 | pipelined | users/s | recall@k vs f32 | corpus MB "
            "| compile s |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in sorted(retrieval, key=lambda r: (r["corpus_size"], r["format"], r["B"], r["repeat"])):
            lines.append(
                f"| {r['corpus_size']:,} | {r['format']} | {r['B']} | {r['k']} | {r['p50']:.2f} (r{r['repeat']}) | "
                f"{r['p99']:.2f} | {_fmt(r['pipelined_ms'])} | {r['users_per_s']:.3g} | "
                f"{_fmt(r['recall_at_k_vs_f32'], '.4f')} | {r['corpus_bytes'] / 2**20:.0f} | {r['compile_s']:.1f} |"
            )
    quality = [q for q in raw["records"] if q.get("kind") == "quality"]
    if quality:
        lines += [
            "",
            "## Quality vs ref-f32 (§5.6)",
            "",
            "| source | variant | bytes vs f32 | max/mean Δp | median/p5 tau (weighted) | top-1/3/10 exact @N1000 | "
            "top-3 overlap | top-10 overlap @N1000 | gates |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for q in quality:
            b = q["quality"]
            if "topk" not in b:
                lines.append(
                    f"| {q.get('checkpoint') or q.get('preset')} | {q['variant']} | – | {b.get('aborted')} |||||"
                )
                continue
            n = max(int(k.split("/N")[1]) for k in b["topk"])
            tk = lambda k, f="exact": b["topk"][f"weighted@{k}/N{n}"][f]  # noqa: E731
            gates = b["gates"]
            gate_txt = ("pass" if gates.get("passed") else "FAIL") if gates.get("applied") else b["label"]
            src = "trained " + str(q.get("checkpoint")) if q.get("trained") else f"{q.get('preset')} random-init"
            lines.append(
                f"| {src} | {q['variant']} | {q['bytes_ratio_vs_f32']:.3f} | {b['probs']['max_abs']:.2e} / "
                f"{b['probs']['mean_abs']:.2e} | {b['kendall_tau']['weighted']['median']:.4f} / "
                f"{b['kendall_tau']['weighted']['p05']:.4f} | {tk(1):.3f} / {tk(3):.3f} / {tk(10):.3f} (N{n}) | "
                f"{tk(3, 'overlap'):.3f} | {tk(10, 'overlap'):.3f} | {gate_txt} |"
            )
    flags = [f for f in raw.get("repeat_flags", []) if f["flagged"]]
    lines += ["", f"## Repeat check: {len(flags)} configuration(s) with p50 spread > 10 % between processes", ""]
    lines += [f"* {' '.join(map(str, f['config']))}: p50s {', '.join(f'{p:.2f}' for p in f['p50s'])}" for f in flags]
    return lines


def _panel_plot(timing: list[dict], x_key: str, fixed_key: str, path: str, title: str) -> bytes:
    """Log-log p50 vs ``x_key``, one line per variant, p90-p99 band, panels per preset x B."""
    panels = sorted({(r["preset"], r["B"]) for r in timing})
    cols = min(3, max(1, len(panels)))
    rows_n = -(-len(panels) // cols)
    fig, axes = subplots(rows_n, cols, figsize=(5.4 * cols, 4.3 * rows_n), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, (preset, b) in zip(axes.flat, panels):
        rows = [r for r in timing if r["preset"] == preset and r["B"] == b]
        spread = collections.defaultdict(set)  # fix the value that leaves the most points along x
        for r in rows:
            spread[r[fixed_key]].add(r[x_key])
        count = collections.Counter(r[fixed_key] for r in rows)
        fixed = max(spread, key=lambda v: (len(spread[v]), count[v]))
        rows = [r for r in rows if r[fixed_key] == fixed]
        for variant in sorted({r["variant"] for r in rows}):
            pts = collections.defaultdict(list)
            for r in rows:
                if r["variant"] == variant:
                    pts[r[x_key]].append(r)
            xs = sorted(pts)
            if not xs:
                continue
            p50 = [np.median([r["p50"] for r in pts[x]]) for x in xs]
            line = ax.plot(xs, p50, marker="o", label=variant)[0]
            ax.fill_between(
                xs,
                [np.median([r["p90"] for r in pts[x]]) for x in xs],
                [np.median([r["p99"] for r in pts[x]]) for x in xs],
                color=line.get_color(),
                alpha=0.15,
            )
        cfg = PhoenixConfig.preset(preset)
        xs_all = sorted({r[x_key] for r in rows})
        if xs_all:
            grid = np.geomspace(min(xs_all), max(xs_all), 20) if len(xs_all) > 1 else np.array(xs_all, float)
            floors = [
                floor_ms(cfg, "split", b, fixed if x_key == "N" else int(x), int(x) if x_key == "N" else fixed)
                for x in grid
            ]
            ax.plot(
                grid, floors, "k--", lw=1, marker="_" if len(grid) == 1 else None, ms=14, label="§3 H100 floor (split)"
            )
        ax.axhspan(*XAI_RANKING_MS, color="tab:red", alpha=0.08, label="xAI ranking 500 cands (service)")
        ax.axhline(XAI_RETRIEVAL_MS[0], color="tab:purple", ls=":", lw=1, label="xAI retrieval 20–50 ms")
        ax.axhline(XAI_RETRIEVAL_MS[1], color="tab:purple", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(x_key)
        ax.set_ylabel("p50 ms per request")
        ax.set_title(f"{preset}, B={b}, {fixed_key}={fixed}")
        ax.legend(fontsize=6)
    fig.suptitle(title)
    png = figure_png(fig)
    with open(path, "wb") as f:
        f.write(png)
    return png


def plots(raw: dict, out_dir) -> list[str]:
    timing = [r for r in raw["records"] if r.get("kind", "timing") == "timing"]
    if not timing:
        return []
    a = f"{out_dir}/latency_vs_candidates.png"
    b = f"{out_dir}/latency_vs_history.png"
    _panel_plot(timing, "N", "S", a, f"p50 vs candidates ({raw['metadata']['device_kind']})")
    _panel_plot(timing, "S", "N", b, f"p50 vs history ({raw['metadata']['device_kind']})")
    return [a, b]


__all__ = ["caching_accounting", "floor_ms", "headline", "plots", "repeat_flags", "request_flops", "table_md"]
