"""Quality metrics (inference spec §5.6): the non-vacuity guard rejects the zero-init trap, Kendall tau
is computed on scores (not argsort indices), exact top-k and overlap are reported separately, and the
acceptance gates apply only to trained weights.
"""

import numpy as np
import pytest

from tests.inference.helpers import model_logits, tiny
from x_reco.bench.quality_metrics import GATES, VacuousReference, non_vacuity, quality_block, tau_stats, topk_agreement
from x_reco.models.testing import random_batch

ACTIONS = tiny().output_action_names


def _outputs(seed=0, u=20, n=64, a=19):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((u, n, a)).astype(np.float32)
    return logits, logits.sum(-1)


def test_guard_rejects_constant_outputs_like_the_upstream_zero_init_model():
    constant = np.zeros((3, 8))  # what the upstream zero init gives (phoenix spec §12 row 21 pins it)
    assert not non_vacuity(constant)["passed"]
    with pytest.raises(VacuousReference):
        quality_block(
            np.zeros((3, 8, 19)), np.zeros((3, 8, 19)), np.zeros((3, 8)), np.zeros((3, 8)), ACTIONS, trained=False
        )
    b = random_batch(tiny(), 4, candidate_lengths=np.full(4, 5), seed=0)
    assert non_vacuity(model_logits(b)[:, :, 0])["passed"]  # the default init is not vacuous


def test_tau_on_scores_and_exact_vs_overlap():
    ref = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]])
    swapped = np.array([[4.0, 5.0, 3.0, 2.0, 1.0]])
    assert tau_stats(ref, swapped)["median"] == pytest.approx(0.8)
    agree = topk_agreement(ref, swapped, 3)
    assert agree == {"exact": 0.0, "overlap": 1.0}  # same set, different order


def test_gates_only_for_trained_weights():
    logits, score = _outputs()
    noisy = logits + 0.3 * np.random.default_rng(1).standard_normal(logits.shape).astype(np.float32)
    random_block = quality_block(logits, noisy, score, noisy.sum(-1), ACTIONS, trained=False)
    assert random_block["gates"] == {"applied": False}
    trained = quality_block(logits, noisy, score, noisy.sum(-1), ACTIONS, trained=True)
    assert trained["gates"]["applied"] and not trained["gates"]["passed"]
    assert trained["gates"]["thresholds"] == GATES
    same = quality_block(logits, logits, score, score, ACTIONS, trained=True)
    assert same["gates"]["passed"] and same["topk"]["weighted@10/N64"]["exact"] == 1.0
    assert set(same["per_action"]) == set(ACTIONS)
