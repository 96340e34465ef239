"""Training losses of the Phoenix models (phoenix spec §13), all in f32.

* ranker: multi-action BCE over observed actions and real candidates;
* retrieval: softmax over the full catalogue, or over in-batch negatives with logQ correction and
  accidental-hit masking; optionally time-aware (a row's negatives are only the items a feed could
  serve at its request time, see ``eligible_in_window``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

MASKED_LOGIT = -1e30


def ranker_bce(
    logits_bca: jax.Array,
    labels_bca: jax.Array,
    candidate_mask_bc: jax.Array,
    label_mask_ba: jax.Array,
    action_weights_a: jax.Array | None = None,
) -> jax.Array:
    """``sum(m * label_mask * w_a * BCE(logit, y)) / max(sum(m), 1)`` (scalar f32).

    Args:
      logits_bca: [B, C, A] logits. labels_bca: [B, C, A] in [0, 1].
      candidate_mask_bc: [B, C] real candidates (padded candidates and padded rows are False).
      label_mask_ba: [B, A] 1 where the dataset observes the action column, or [B, C, A] per
        candidate (e.g. negative actions unobserved on sampled candidates).
      action_weights_a: optional [A] per-action weights (default 1).
    """
    bce_bca = optax.sigmoid_binary_cross_entropy(logits_bca.astype(jnp.float32), labels_bca.astype(jnp.float32))
    m_bc = candidate_mask_bc.astype(jnp.float32)
    w_bca = label_mask_ba.astype(jnp.float32)
    w_bca = w_bca if w_bca.ndim == 3 else w_bca[:, None, :]
    if action_weights_a is not None:
        w_bca = w_bca * action_weights_a.astype(jnp.float32)
    return jnp.sum(bce_bca * m_bc[..., None] * w_bca) / jnp.maximum(jnp.sum(m_bc), 1.0)


def listwise_softmax(
    logits_bca: jax.Array, labels_bca: jax.Array, candidate_mask_bc: jax.Array, label_mask_ba: jax.Array
) -> jax.Array:
    """Each observed action's positives against the row's other real candidates (scalar f32): the mean
    over (row, action) pairs with at least one positive of ``-sum_c y_c log softmax_c(z_ca) / sum_c y_c``,
    the softmax over the row's real candidates. A ranking loss over the list the ranker re-ranks, next to
    the per-candidate BCE that keeps the probabilities calibrated (``TrainConfig.listwise_weight``).

    ``label_mask_ba`` is [B, A], or [B, C, A] (an action counts for a row if any candidate observes it).
    """
    m_bc1 = candidate_mask_bc[..., None]
    z = jnp.where(m_bc1, logits_bca.astype(jnp.float32), -1e30)
    logp = jnp.where(m_bc1, jax.nn.log_softmax(z, axis=1), 0.0)
    y = labels_bca.astype(jnp.float32) * m_bc1
    pos_ba = jnp.sum(y, axis=1)
    observed_ba = label_mask_ba if label_mask_ba.ndim == 2 else jnp.max(label_mask_ba, axis=1)
    valid_ba = (pos_ba > 0) & (observed_ba > 0)
    per_ba = -jnp.sum(y * logp, axis=1) / jnp.maximum(pos_ba, 1e-9)
    return jnp.sum(jnp.where(valid_ba, per_ba, 0.0)) / jnp.maximum(jnp.sum(valid_ba), 1.0)


def _masked_mean(x_b: jax.Array, row_mask_b: jax.Array) -> jax.Array:
    m_b = row_mask_b.astype(jnp.float32)
    return jnp.sum(x_b * m_b) / jnp.maximum(jnp.sum(m_b), 1.0)


def eligible_in_window(request_b: jax.Array, created_n: jax.Array, window_s: int) -> jax.Array:
    """bool [B, N]: item n was created in ``[request_b - window_s, request_b]`` (times in the same units).

    The training-time twin of ``x_reco.eval.heldout.ineligible_mask`` (its complement).
    """
    created = created_n[None, :]
    return (created <= request_b[:, None]) & (created >= request_b[:, None] - window_s)


def full_softmax_loss(
    user_bd: jax.Array,
    items_nd: jax.Array,
    target_b: jax.Array,
    row_mask_b: jax.Array,
    temperature: float,
    eligible_bn: jax.Array | None = None,
    bias_bn: jax.Array | None = None,
) -> jax.Array:
    """Cross-entropy of the positive item against every catalogue item (or every eligible one).

    Args:
      user_bd: [B, D] unit user vectors. items_nd: [N, D] unit vectors of the whole catalogue.
      target_b: int32 [B] catalogue index of each row's positive. row_mask_b: [B] real rows.
      eligible_bn: optional bool [B, N]: the items that may act as row b's negatives; the positive
        always stays in its row's softmax.
      bias_bn: optional [B, N] added to ``u·v`` before the temperature (the retriever's learned
        repeat term, ``PhoenixRetriever.history_repeats``).
    """
    scores_bn = user_bd.astype(jnp.float32) @ items_nd.astype(jnp.float32).T
    if bias_bn is not None:
        scores_bn = scores_bn + bias_bn.astype(jnp.float32)
    logits_bn = scores_bn / temperature
    if eligible_bn is not None:
        keep_bn = eligible_bn | (jnp.arange(items_nd.shape[0])[None, :] == target_b[:, None])
        logits_bn = jnp.where(keep_bn, logits_bn, MASKED_LOGIT)
    return _masked_mean(optax.softmax_cross_entropy_with_integer_labels(logits_bn, target_b), row_mask_b)


def sampled_softmax_loss(
    user_bd: jax.Array,
    positive_bd: jax.Array,
    item_b: jax.Array,
    log_q_b: jax.Array,
    row_mask_b: jax.Array,
    temperature: float,
    eligible_bb: jax.Array | None = None,
) -> jax.Array:
    """In-batch softmax: row i's positive against the other rows' positives.

    ``logit_ij = u_i . c_j / tau - log q_j`` (logQ correction, q_j = the probability that item j
    appears as an in-batch negative); column j is masked in row i when it holds the same item as
    row i's positive (accidental hit) or is a padded row.

    Args:
      user_bd: [B, D] unit user vectors. positive_bd: [B, D] unit vectors of each row's positive.
      item_b: int32 [B] catalogue index of each positive. log_q_b: [B] log sampling probability.
      row_mask_b: [B] real rows.
      eligible_bb: optional bool [B, B]: column j may act as row i's negative (the diagonal is kept).
    """
    logits_bb = (user_bd.astype(jnp.float32) @ positive_bd.astype(jnp.float32).T) / temperature
    logits_bb = logits_bb - log_q_b.astype(jnp.float32)[None, :]
    eye_bb = jnp.eye(item_b.shape[0], dtype=bool)
    drop_bb = ((item_b[:, None] == item_b[None, :]) & ~eye_bb) | ~row_mask_b[None, :]
    if eligible_bb is not None:
        drop_bb = drop_bb | (~eligible_bb & ~eye_bb)
    logits_bb = jnp.where(drop_bb, MASKED_LOGIT, logits_bb)
    labels_b = jnp.arange(item_b.shape[0])
    return _masked_mean(optax.softmax_cross_entropy_with_integer_labels(logits_bb, labels_b), row_mask_b)


def item_log_q(train_items: np.ndarray, num_items: int, batch_size: int) -> np.ndarray:
    """log q_j for in-batch negatives: ``log(1 - (1 - p_j)^B)`` with p_j the item's share of positives.

    q_j is the probability that item j is in a batch of B positives drawn by frequency; items never
    seen as positives get the floor of one pseudo-count.
    """
    counts = np.bincount(train_items, minlength=num_items).astype(np.float64)
    p = np.maximum(counts, 1.0) / max(counts.sum(), 1.0)
    q = -np.expm1(batch_size * np.log1p(-np.minimum(p, 1 - 1e-12)))
    return np.log(q).astype(np.float32)
