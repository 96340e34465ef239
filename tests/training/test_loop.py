"""Training-loop contracts: same config -> bit-identical loss curve (CPU); a run stopped mid-way and
restarted from its Orbax checkpoint ends exactly where an uninterrupted run ends; the exported model
restores to the same outputs; a run directory refuses another config or another HashSpec; training
learns (val retrieval beats popularity on structured toy data)."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from flax import nnx

from tests.training.helpers import interrupt_at, tiny_cfg, toy_seqs, with_catalogue
from x_reco.eval import evaluate_popularity
from x_reco.eval.retrieval import evaluate_retrieval, user_vectors
from x_reco.features.hashing import HashSpec
from x_reco.models.checkpoint import read_metadata, restore_checkpoint
from x_reco.training.loop import train_ranker, train_retriever
from x_reco.training.resume import TrainCheckpoints

CFG = tiny_cfg(num_steps=100, checkpoint_every=40, batch_size=16, learning_rate=1e-2, warmup_steps=4)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    calls = []
    result = train_retriever(toy_seqs(), CFG, tmp_path_factory.mktemp("ref"), progress=lambda *a: calls.append(a))
    return result, calls


def test_result_fields_progress_and_learning(reference):
    result, calls = reference
    assert result.step == 100 and len(result.losses) == 100 and np.isfinite(result.losses).all()
    assert result.resumed_from is None and result.examples_per_s > 0 and result.wall_time_s > 0
    assert [c[0] for c in calls] == list(range(1, 101)) and all(c[1] == 100 for c in calls)
    assert calls[-1][2] == result.losses[-1] and calls[-1][4] == 0.0
    assert np.mean(result.losses[-5:]) < np.mean(result.losses[:5]) - 0.5
    assert [x["step"] for x in result.score_spread] == [0] and result.score_spread[0]["std_across_candidates"] > 1e-3
    pop = evaluate_popularity(toy_seqs(), "val")
    assert result.val_metrics["masked_hr@10"] > pop["masked_hr@10"] + 0.3, (result.val_metrics, pop)


def test_same_config_gives_bit_identical_loss_curve(reference, tmp_path):
    again = train_retriever(toy_seqs(), CFG, tmp_path / "again")
    assert again.losses == reference[0].losses


def test_stop_midway_and_resume_matches_uninterrupted(reference, tmp_path):
    interrupt_at(train_retriever, toy_seqs(), CFG, tmp_path, 50)
    assert TrainCheckpoints(tmp_path, 2).latest_step() == 40
    resumed = train_retriever(toy_seqs(), CFG, tmp_path)
    assert resumed.resumed_from == 40
    assert resumed.losses == reference[0].losses
    assert [x["step"] for x in resumed.score_spread] == [0, 40]  # logged at init and after restore
    assert resumed.losses[-1] == reference[0].losses[-1]
    kept = sorted(p.name for p in (tmp_path / "train").iterdir() if p.name.isdigit())
    assert kept == ["100", "80"]  # keep 2, and the final step is saved


def test_exported_model_restores_to_same_outputs(reference):
    result, _ = reference
    seqs = toy_seqs()
    spec = HashSpec.from_dict(read_metadata(result.checkpoint_path)["hash_spec"])
    model, meta = restore_checkpoint(result.checkpoint_path, hash_spec=spec)
    rows = np.arange(20)
    want, got = user_vectors(result.model, seqs, rows), user_vectors(model, seqs, rows)
    assert np.array_equal(want, got) and np.std(want) > 1e-3
    assert meta["step"] == 100 and meta["extra"]["train_config"]["num_steps"] == 100


def test_run_directory_refuses_other_config_or_hash_spec(reference, tmp_path):
    interrupt_at(train_retriever, toy_seqs(), CFG, tmp_path, 41)
    with pytest.raises(ValueError, match="different TrainConfig"):
        train_retriever(toy_seqs(), CFG.replace(learning_rate=5e-3), tmp_path)
    seqs = toy_seqs()
    other = dataclasses.replace(seqs, hash_spec=dataclasses.replace(seqs.hash_spec, salt="another-salt"))
    with pytest.raises(ValueError, match="HashSpec mismatch"):
        train_retriever(other, CFG, tmp_path)


def test_ranker_trains_and_reports_per_action_metrics(tmp_path):
    result = train_ranker(toy_seqs(), tiny_cfg(num_steps=12, learning_rate=1e-2), tmp_path)
    assert len(result.losses) == 12 and np.isfinite(result.losses).all()
    assert np.mean(result.losses[-3:]) < np.mean(result.losses[:3])
    for name in ("favorite", "click", "dwell", "not_interested"):
        assert f"{name}_auc" in result.val_metrics and f"{name}_log_loss" in result.val_metrics
    assert "reply_auc" not in result.val_metrics  # unobserved on MovieLens
    assert result.model_kind == "ranker" and nnx.state(result.model)


ROOT = Path(__file__).resolve().parents[2]


def toy_run(ckpt_dir, *args, devices: int = 1, **popen) -> subprocess.Popen:
    env = dict(os.environ)
    if devices > 1:  # a fake multi-device mesh exists only on the host platform
        env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
    cmd = [sys.executable, "-m", "tests.training.toy_run", str(ckpt_dir), *map(str, args)]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, **popen)


@pytest.mark.slow  # ~14 s in a subprocess with two CPU devices: `make test-slow`
def test_two_device_mesh_matches_one_device(reference, tmp_path):
    proc = toy_run(tmp_path, "--stop-at", 30, devices=2)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert [x["step"] for x in lines] == list(range(1, 31)) and {x["devices"] for x in lines} == {2}
    np.testing.assert_allclose([x["loss"] for x in lines], reference[0].losses[:30], rtol=2e-4, atol=2e-4)


@pytest.mark.slow
def test_sigkill_midway_then_restart_matches_uninterrupted(reference, tmp_path):
    proc = toy_run(tmp_path, "--sleep-after", 45)
    try:
        for line in proc.stdout:
            if line.startswith("{") and json.loads(line)["step"] >= 50:
                break
        assert (tmp_path / "train" / "40").is_dir()
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    resumed = train_retriever(toy_seqs(), CFG, tmp_path)
    assert resumed.resumed_from == 40
    assert resumed.losses == reference[0].losses


# ~10 s each: `make test-slow` (the models-group test trains with the 48 h negative window)
@pytest.mark.slow
@pytest.mark.parametrize("loss", ["full", "sampled"])
def test_time_aware_negatives(loss, tmp_path):
    """A window that excludes nothing reproduces the time-blind loss curve (to f32 rounding: the mask
    changes XLA's fusion); a short
    window trains on fewer negatives (lower loss) and validates on the windowed catalogue."""
    seqs = toy_seqs()
    seqs = with_catalogue(
        seqs, item_created_ts=np.full_like(seqs.catalogue.item_created_ts, seqs.examples.request_ts.min())
    )
    cfg = tiny_cfg(num_steps=6, checkpoint_every=0, retrieval_loss=loss)
    blind = train_retriever(seqs, cfg, tmp_path / "blind")
    everything = train_retriever(seqs, cfg.replace(negative_window_s=1e9), tmp_path / "all")
    np.testing.assert_allclose(everything.losses, blind.losses, rtol=1e-5)

    seqs = toy_seqs()  # creation time = first appearance: a 300 s window keeps a few items per request
    windowed = train_retriever(seqs, cfg.replace(negative_window_s=300.0), tmp_path / "short")
    fresh = train_retriever(seqs, cfg, tmp_path / "fresh")
    assert np.isfinite(windowed.losses).all() and windowed.losses[0] < fresh.losses[0] - 0.5
    replay = evaluate_retrieval(windowed.model, seqs, "val", catalogue_window_s=300.0)
    assert {k: windowed.val_metrics[k] for k in replay} == replay
    assert read_metadata(windowed.checkpoint_path)["extra"]["train_config"]["negative_window_s"] == 300.0


@pytest.mark.slow  # ~9 s: `make test-slow`
def test_select_best_exports_the_validation_best_and_resumes_to_it(tmp_path):
    cfg = tiny_cfg(
        num_steps=40, checkpoint_every=10, eval_every=5, select_best=True, learning_rate=3e-2, warmup_steps=2
    )
    whole = train_retriever(toy_seqs(), cfg, tmp_path / "whole")
    scores = [e["masked_ndcg@10"] for e in whole.eval_history]
    best = whole.eval_history[int(np.argmax(scores))]["step"]  # first maximum: ties keep the earlier step
    assert best < 40 and whole.selected_step == best and whole.step == 40  # this toy run peaks early
    meta = read_metadata(whole.checkpoint_path)
    assert meta["step"] == best and meta["extra"]["trained_steps"] == 40
    replay = evaluate_retrieval(whole.model, toy_seqs(), "val")
    assert {k: whole.val_metrics[k] for k in replay} == replay and whole.val_metrics["masked_ndcg@10"] == max(scores)
    interrupt_at(train_retriever, toy_seqs(), cfg, tmp_path / "cut", 25)
    resumed = train_retriever(toy_seqs(), cfg, tmp_path / "cut")
    assert resumed.resumed_from == 20 and resumed.selected_step == best
    assert read_metadata(resumed.checkpoint_path)["param_version"] == meta["param_version"]
    with pytest.raises(ValueError, match="select_best needs eval_every"):
        tiny_cfg(select_best=True)
