"""Great Expectations 1.x suites for raw tables, events and sequences (datasets spec §13)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from x_reco.common.actions import ACTIONS
from x_reco.data.examples import EngagementSequences, Split
from x_reco.data.registry import SplitRule, dataset_spec


@dataclasses.dataclass
class SuiteResult:
    """Outcome of one expectation suite: which expectations failed and their details."""

    suite: str
    success: bool
    n_rows: int
    evaluated: int
    failed: list[str]
    details: list[dict[str, Any]]

    def summary(self) -> str:
        if self.success:
            return f"{self.suite}: all {self.evaluated} expectations passed on {self.n_rows} rows"
        return f"{self.suite}: {len(self.failed)} of {self.evaluated} failed: " + "; ".join(self.failed)


def run_suite(df: pd.DataFrame, suite_name: str, expectations: list) -> SuiteResult:
    """Validate ``df`` against ``expectations`` with an ephemeral GX context (analytics and progress
    bars off in its own config, so no environment variable is needed)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    ctx = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            analytics_enabled=False,
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        ),
    )
    batch_def = (
        ctx.data_sources.add_pandas(f"{suite_name}_src")
        .add_dataframe_asset(suite_name)
        .add_batch_definition_whole_dataframe("whole")
    )
    suite = gx.ExpectationSuite(name=suite_name)
    for exp in expectations:
        suite.add_expectation(exp)
    result = batch_def.get_batch(batch_parameters={"dataframe": df}).validate(suite)
    failed, details = [], []
    for r in result.results:
        cfg = r.expectation_config
        label = f"{cfg.type}({cfg.kwargs.get('column', cfg.kwargs.get('column_list', ''))})"
        info = {"expectation": label, "success": bool(r.success)}
        if not r.success:
            res = r.result or {}
            info["observed"] = str(res.get("observed_value", res.get("unexpected_count", "")))[:200]
            info["sample"] = str(res.get("partial_unexpected_list", ""))[:200]
            failed.append(f"{label} observed={info['observed']}")
        details.append(info)
    return SuiteResult(suite_name, bool(result.success), len(df), len(result.results), failed, details)


def _gxe():
    import great_expectations.expectations as gxe

    return gxe


def interactions_expectations(partition: str, n_users: int | None = None) -> list:
    """R1-R6 on the canonical interactions table."""
    gxe, facts = _gxe(), dataset_spec(partition).quality
    exps = [gxe.ExpectColumnToExist(column=c) for c in ("user_id", "item_id", "ts", "src_file", "src_row")]
    exps += [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("user_id", "item_id", "ts", "src_row")]
    if facts.ratings:
        exps += [
            gxe.ExpectColumnValuesToBeBetween(column="rating", min_value=1, max_value=5),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["user_id", "item_id"]),
        ]
    if facts.binary_labels:
        exps.append(gxe.ExpectColumnValuesToBeInSet(column="label", value_set=[0, 1]))
    if facts.ts_range:
        lo, hi = facts.ts_range
        exps.append(gxe.ExpectColumnValuesToBeBetween(column="ts", min_value=lo, max_value=hi))
    for col, lo, hi in facts.id_ranges:
        exps.append(gxe.ExpectColumnValuesToMatchRegex(column=col, regex=r"^[1-9][0-9]*$"))
        exps.append(gxe.ExpectColumnValuesToBeBetween(column=f"{col}_num", min_value=lo, max_value=hi))
    if facts.counts:
        interactions, users, _ = facts.counts
        exps.append(gxe.ExpectTableRowCountToEqual(value=interactions))
        exps.append(gxe.ExpectColumnUniqueValueCountToBeBetween(column="user_id", min_value=users, max_value=users))
    if facts.binary_actions:
        exps += [gxe.ExpectColumnValuesToBeInSet(column=a, value_set=[0, 1]) for a in ACTIONS]
        if n_users is not None:
            exps.append(gxe.ExpectColumnUniqueValueCountToBeBetween(column="user_id", max_value=n_users))
    return exps


def interactions_frame(partition: str, interactions: pd.DataFrame) -> pd.DataFrame:
    """The interactions with the derived columns some expectations read (numeric ids)."""
    df = interactions
    id_ranges = dataset_spec(partition).quality.id_ranges
    if id_ranges:
        df = df.copy()
        for col, _, _ in id_ranges:
            df[f"{col}_num"] = pd.to_numeric(df[col], errors="coerce")
    return df


def items_expectations(partition: str) -> list:
    gxe, facts = _gxe(), dataset_spec(partition).quality
    exps = [gxe.ExpectColumnValuesToNotBeNull(column="item_id"), gxe.ExpectColumnValuesToBeUnique(column="item_id")]
    if facts.counts:
        exps.append(gxe.ExpectTableRowCountToEqual(value=facts.counts[2]))
    exps += [
        gxe.ExpectColumnValuesToBeInSet(column=f"genre_{i:02d}", value_set=[0, 1]) for i in range(facts.genre_flags)
    ]
    return exps


def users_expectations(partition: str, n_users: int | None = None) -> list:
    gxe, facts = _gxe(), dataset_spec(partition).quality
    exps = [gxe.ExpectColumnValuesToNotBeNull(column="user_id"), gxe.ExpectColumnValuesToBeUnique(column="user_id")]
    if facts.counts:
        exps.append(gxe.ExpectTableRowCountToEqual(value=facts.counts[1]))
    elif n_users is not None:
        exps.append(gxe.ExpectTableRowCountToEqual(value=n_users))
    return exps


def events_frame(events: pd.DataFrame, partition: str) -> pd.DataFrame:
    """Per-user ordering and split facts of the events table (S3, S4, S5) as columns."""
    spec = dataset_spec(partition)
    mask = spec.observed_mask.astype(bool)
    acts = events[list(ACTIONS)].to_numpy()
    same_user = events["user_id"].to_numpy()[1:] == events["user_id"].to_numpy()[:-1]
    ts, row = events["ts"].to_numpy(), events["src_row"].to_numpy()
    in_order = np.ones(len(events), dtype=bool)
    in_order[1:] = ~same_user | (ts[1:] > ts[:-1]) | ((ts[1:] == ts[:-1]) & (row[1:] >= row[:-1]))
    split_code = events["split"].map(Split.codes()).to_numpy()
    split_ok = np.ones(len(events), dtype=bool)
    if spec.split_rule != SplitRule.FILE:  # a split by file is not monotone per user
        split_ok[1:] = ~same_user | (split_code[1:] >= split_code[:-1])
    return pd.DataFrame(
        {
            "user_id": events["user_id"],
            "in_order": in_order,
            "split_monotone": split_ok,
            "actions_binary": np.isin(acts, (0, 1)).all(axis=1),
            "unobserved_zero": (acts[:, ~mask] == 0).all(axis=1),
            "split": events["split"],
            "surface": events["surface"],
        }
    )


def events_expectations(partition: str) -> list:
    gxe = _gxe()
    exps = [
        gxe.ExpectColumnValuesToBeInSet(column=c, value_set=[True])
        for c in ("in_order", "split_monotone", "actions_binary", "unobserved_zero")
    ]
    exps += [
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "val", "test"]),
        gxe.ExpectColumnValuesToBeBetween(column="surface", min_value=0, max_value=15),
    ]
    return exps


def sequence_frame(seqs: EngagementSequences) -> pd.DataFrame:
    """One row per example with the structural facts S1-S7 checks read."""
    ex, hist, cand = seqs.examples, seqs.history, seqs.candidates
    hist_valid = hist.post_hashes[:, :, 0] != 0
    cand_valid = cand.post_hashes[:, :, 0] != 0
    mask = seqs.observed_mask.astype(bool)
    vocab = int(max(seqs.catalogue.post_hashes.max(initial=0), ex.user_hashes.max(initial=0)))

    def prefix_ok(valid):  # no valid slot after a padded one
        return ~(np.diff(valid.astype(np.int8), axis=1) > 0).any(axis=1)

    def pad_zero(valid, *arrays):
        ok = np.ones(len(valid), dtype=bool)
        for a in arrays:
            a2 = a.reshape(a.shape[0], a.shape[1], -1)
            ok &= ~((a2 != 0).any(axis=2) & ~valid).any(axis=1)
        return ok

    hist_ts = np.where(hist_valid, hist.ts, np.iinfo(np.int64).min)
    ts_sorted = ~(np.diff(np.where(hist_valid, hist.ts, np.iinfo(np.int64).max), axis=1) < 0).any(axis=1)
    pos_item = np.take_along_axis(cand.item_idx, np.argmax(cand.item_idx >= 0, axis=1)[:, None], axis=1)
    target_in_hist = ((hist.item_idx == pos_item) & hist_valid).any(axis=1)
    acts = np.concatenate([hist.actions, cand.actions], axis=1)
    return pd.DataFrame(
        {
            "split": ex.split,
            "hist_len": hist.length,
            "hist_len_matches": hist_valid.sum(axis=1) == hist.length,
            "hist_prefix": prefix_ok(hist_valid),
            "cand_prefix": prefix_ok(cand_valid),
            "n_cand": cand_valid.sum(axis=1),
            "hist_pad_zero": pad_zero(hist_valid, hist.post_hashes, hist.author_hashes, hist.actions, hist.surface),
            "hist_before_request": (hist_ts.max(axis=1) <= ex.request_ts),
            "hist_sorted": ts_sorted,
            "target_not_in_history": ~target_in_hist,
            "actions_binary": np.isin(acts, (0, 1)).reshape(len(acts), -1).all(axis=1),
            "unobserved_zero": (acts[:, :, ~mask] == 0).reshape(len(acts), -1).all(axis=1),
            "surface": ex.surface,
            "max_hash": max(vocab, 0),
        }
    )


def sequence_expectations(history_len: int, vocab_size: int, per_event: bool) -> list:
    gxe = _gxe()
    flags = (
        "hist_len_matches",
        "hist_prefix",
        "cand_prefix",
        "hist_pad_zero",
        "hist_before_request",
        "hist_sorted",
        "actions_binary",
        "unobserved_zero",
    )
    exps = [gxe.ExpectColumnValuesToBeInSet(column=c, value_set=[True]) for c in flags]
    exps += [
        gxe.ExpectColumnValuesToBeBetween(column="hist_len", min_value=0, max_value=history_len),
        gxe.ExpectColumnValuesToBeBetween(column="n_cand", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="surface", min_value=0, max_value=15),
        gxe.ExpectColumnValuesToBeBetween(column="max_hash", min_value=1, max_value=vocab_size - 1),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=[int(s) for s in Split]),
    ]
    if per_event:
        exps.append(gxe.ExpectColumnValuesToBeInSet(column="target_not_in_history", value_set=[True]))
    return exps


def leave_last_out_frame(seqs: EngagementSequences) -> pd.DataFrame:
    """S6: per-user example counts by split (exactly one val and one test per user)."""
    df = pd.DataFrame({"user_idx": seqs.examples.user_idx, "split": seqs.examples.split})
    counts = df.groupby("user_idx")["split"].agg(
        n_val=lambda s: int((s == Split.VAL).sum()), n_test=lambda s: int((s == Split.TEST).sum())
    )
    return counts.reset_index()


def leave_last_out_expectations() -> list:
    gxe = _gxe()
    return [
        gxe.ExpectColumnValuesToBeBetween(column="n_val", min_value=1, max_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="n_test", min_value=1, max_value=1),
    ]


def structural_rules_result(raw) -> SuiteResult:
    """S4 for the synthetic world: every structural rule of §9.4.4 has zero violating rows."""
    from x_reco.data.synthetic.checks import structural_violations

    cfg = raw.manifest.get("config", {})
    counts = structural_violations(
        raw.interactions,
        raw.items,
        raw.extra["follows"],
        float(cfg.get("dwell_short_s", 2.0)),
        float(cfg.get("dwell_long_s", 10.0)),
    )
    frame = pd.DataFrame({"rule": list(counts), "violations": list(counts.values())})
    gxe = _gxe()
    result = run_suite(
        frame,
        "synthetic_structural_rules",
        [gxe.ExpectColumnValuesToBeBetween(column="violations", min_value=0, max_value=0)],
    )
    broken = frame[frame["violations"] > 0]
    result.failed = [f"rule {r} violated by {n} rows" for r, n in zip(broken["rule"], broken["violations"])]
    result.evaluated = len(frame)  # one rule per row
    return result


def merge_results(a: SuiteResult, b: SuiteResult) -> SuiteResult:
    """One check outcome from two suites."""
    return SuiteResult(
        suite=f"{a.suite}+{b.suite}",
        success=a.success and b.success,
        n_rows=a.n_rows,
        evaluated=a.evaluated + b.evaluated,
        failed=a.failed + b.failed,
        details=a.details + b.details,
    )


def item_features_expectations(partition: str, check_pool_size: bool = True) -> list:
    """S8: features in [0, 1], D columns, the pool size of §8."""
    gxe, facts = _gxe(), dataset_spec(partition).quality
    d = facts.feature_dim
    exps = [gxe.ExpectColumnValuesToBeBetween(column=f"f_{i:02d}", min_value=0.0, max_value=1.0) for i in range(d)]
    exps += [gxe.ExpectColumnToExist(column=f"f_{d - 1:02d}"), gxe.ExpectColumnValuesToBeUnique(column="item_id")]
    if check_pool_size:
        n = facts.pool_size
        exps.append(gxe.ExpectColumnValuesToBeInSet(column="in_pool", value_set=[True, False]))
        exps.append(gxe.ExpectColumnDistinctValuesToContainSet(column="in_pool", value_set=[True]))
        exps.append(gxe.ExpectColumnSumToBeBetween(column="in_pool_int", min_value=n, max_value=n))
    return exps
