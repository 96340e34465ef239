"""The step-to-rows map is a pure function of (seed, step) that covers each epoch exactly once (batches
themselves: tests/data/test_batches.py)."""

import numpy as np

from x_reco.training.data import step_chunk


def test_step_chunks_cover_each_epoch_once_and_depend_only_on_step():
    n, b = 37, 8  # 5 steps per epoch, the last one short
    epoch0 = np.concatenate([step_chunk(n, b, 3, s) for s in range(5)])
    assert sorted(epoch0) == list(range(n))
    assert np.array_equal(step_chunk(n, b, 3, 7), step_chunk(n, b, 3, 7))
    assert not np.array_equal(np.concatenate([step_chunk(n, b, 3, s) for s in range(5, 10)]), epoch0)
