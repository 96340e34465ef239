"""The training data order: which example positions each global step trains on (batches themselves are
cut by ``x_reco.data.batches``)."""

from __future__ import annotations

import numpy as np


def steps_per_epoch(n: int, batch_size: int) -> int:
    return max(1, -(-n // batch_size))


def step_chunk(num: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Positions (into a pool of ``num`` examples) of global training step ``step``.

    Epoch ``e = step // steps_per_epoch`` visits the pool in the order ``permutation(Generator([seed,
    e]))``; the last chunk of an epoch may be short (the batch is padded). A pure function of the
    step, so a resumed run sees exactly the batches an uninterrupted run would.
    """
    spe = steps_per_epoch(num, batch_size)
    order = np.random.default_rng([seed, step // spe]).permutation(num)
    start = (step % spe) * batch_size
    return order[start : start + batch_size]
