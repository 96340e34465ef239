"""Two-factor engagement model, dwell model and structural rules (datasets spec §9.4)."""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import special

from x_reco.data.synthetic.config import MEDIA_TYPES
from x_reco.data.synthetic.targets import (
    AROUSAL,
    CANCELLED_BY_NEGATIVE,
    DISCRETE,
    GATED_BY_DWELL,
    GATING_NEGATIVES,
    LATENT_ACTIONS,
    LATENT_INDEX,
    P_COPY_LINK_GIVEN_SHARE,
    latent_loadings,
    latent_signs,
    taste_anchors,
)

_IDX = {name: i for i, name in enumerate(DISCRETE)}
_LAT = {name: i for i, name in enumerate(LATENT_ACTIONS)}
DWELL_SIGMA = 1.0
POSITION_PENALTY = 0.03
FOLLOW_BOOST = 0.5
VIDEO = MEDIA_TYPES.index("video")
PHOTO = MEDIA_TYPES.index("photo")
_LOADINGS = latent_loadings()
_UNIQUE = np.sqrt(1.0 - (_LOADINGS**2).sum(axis=1))
_SIGNS = latent_signs()
_POSITIVE = _SIGNS > 0
_AROUSAL = np.isin(np.array(LATENT_ACTIONS), AROUSAL)
_HOSTILE = taste_anchors() < 0  # [archetype, topic]: the opposite political camp


@dataclasses.dataclass(frozen=True)
class Exposures:
    """Per-impression inputs of the engagement model; every field is an [N] array."""

    archetype: np.ndarray  # int, index into ARCHETYPES
    topic: np.ndarray  # int, index into TOPICS (the post's topic)
    b_u: np.ndarray  # user engagement offset
    taste_dev: np.ndarray  # (θ_u - A[archetype])[topic]
    quality: np.ndarray  # q_p
    followed: np.ndarray  # bool: user follows the author at impression time
    position: np.ndarray  # int slot in the feed
    media: np.ndarray  # int, index into MEDIA_TYPES
    is_quote: np.ndarray  # bool


@dataclasses.dataclass(frozen=True)
class Noise:
    """normals [N, 2 + 16]: Z_v, Z_r, then E_a per latent action; uniforms [N, 2]: dm, copy-link."""

    normals: np.ndarray
    uniforms: np.ndarray


@dataclasses.dataclass(frozen=True)
class Engagement:
    """Sampled outcomes: actions [N, 18] int8 (post-rule), dwell_seconds [N] float32,
    dwell_time [N] int8, and the truth probabilities [N, 19] (pre-rule marginals)."""

    actions: np.ndarray
    dwell_seconds: np.ndarray
    dwell_time: np.ndarray
    probs: np.ndarray


def draw_noise(rng: np.random.Generator, n: int) -> Noise:
    """All randomness of n impressions, in one fixed layout so callers stay reproducible."""
    return Noise(rng.standard_normal((n, 2 + len(LATENT_ACTIONS))), rng.random((n, 2)))


def personal_offsets(exp: Exposures) -> np.ndarray:
    """[N, 16] o_a = b_u + s_a (taste + quality + 0.5 follows) - 0.03 position [a positive].

    s_a is -1 for the negatives, and for reply/quote on hostile content (outrage), else +1.
    """
    affinity = exp.taste_dev + exp.quality + FOLLOW_BOOST * exp.followed
    hostile = _HOSTILE[exp.archetype, exp.topic]
    signs = np.where(_AROUSAL[None, :] & hostile[:, None], -1.0, _SIGNS[None, :])
    offsets = exp.b_u[:, None] + affinity[:, None] * signs
    return offsets - POSITION_PENALTY * exp.position[:, None] * _POSITIVE[None, :]


def latent_scores(exp: Exposures, noise: Noise) -> np.ndarray:
    """[N, 16] L_a; the dwell column carries the video shift log(2)/σ_d of its log-seconds."""
    z = noise.normals
    scores = z[:, :1] * _LOADINGS[:, 0] + z[:, 1:2] * _LOADINGS[:, 1] + z[:, 2:] * _UNIQUE
    scores[:, _LAT["dwell"]] += np.log(2.0) / DWELL_SIGMA * (exp.media == VIDEO)
    return scores


def firing_keys(exp: Exposures, noise: Noise) -> np.ndarray:
    """[N, 16] keys k with: action fires iff base logit c_a > k (the calibration's view).

    The generator's test ``L_a > Φ⁻¹(1 - π̃_a)`` with ``logit π̃_a = c_a + o_a`` is the same as
    ``c_a > logit Φ(-L_a) - o_a``, whose right side does not depend on c_a.
    """
    # Clipping at ±8 sigma only touches events of probability < 1e-15 and keeps Φ off 0 and 1.
    scores = np.clip(latent_scores(exp, noise), -8.0, 8.0)
    return np.log(special.ndtr(-scores) / special.ndtr(scores)) - personal_offsets(exp)


def _probit_of_logit(x: np.ndarray) -> np.ndarray:
    """Φ⁻¹(sigmoid(x)), evaluated on the negative side so sigmoid never rounds to 1."""
    tail = special.ndtri(special.expit(-np.abs(x)))
    return np.where(x < 0, tail, -tail)


def sample_engagement(
    exp: Exposures,
    noise: Noise,
    base_logits: np.ndarray,
    p_dm: np.ndarray,
    dwell_short_s: float,
    dwell_long_s: float,
) -> Engagement:
    """Sample actions for N impressions: a fires iff L_a > Φ⁻¹(1 - π̃_a), then the rules.

    Args:
      exp, noise: per-impression inputs and randomness (N rows).
      base_logits: [archetype, topic, 16] calibrated c_a.
      p_dm: [archetype] P(share_via_dm | share).
      dwell_short_s, dwell_long_s: thresholds of the `dwell` and `dwell_time` labels.
    """
    logits = base_logits[exp.archetype, exp.topic] + personal_offsets(exp)
    probits = _probit_of_logit(logits)
    scores = latent_scores(exp, noise)
    raw = scores + probits > 0  # L_a > Φ⁻¹(1 - π̃_a) = -Φ⁻¹(π̃_a)
    # log s = log(short) + σ_d (Φ⁻¹(π̃_dwell) + L_dwell), the video shift already inside L_dwell.
    z_dwell = probits[:, _LAT["dwell"]]
    log_s = np.log(dwell_short_s) + DWELL_SIGMA * (z_dwell + scores[:, _LAT["dwell"]])
    forced = raw[:, [_LAT[a] for a in AROUSAL]].any(axis=1)
    seconds = _dwell_seconds(log_s, forced, dwell_short_s)
    # Labels come from the stored float32 seconds so they can be re-derived from the table.
    raw[:, _LAT["dwell"]] = seconds >= dwell_short_s
    actions = apply_rules(raw, exp, noise.uniforms, p_dm)
    probs = _truth_probs(logits, z_dwell, exp, p_dm, dwell_short_s, dwell_long_s)
    return Engagement(actions, seconds, (seconds >= dwell_long_s).astype(np.int8), probs)


def _dwell_seconds(log_s: np.ndarray, forced: np.ndarray, dwell_short_s: float) -> np.ndarray:
    """float32 seconds; a forced dwell mirrors a short log-dwell above the threshold."""
    log_short = np.log(dwell_short_s)
    log_s = np.where(forced & (log_s < log_short), 2.0 * log_short - log_s, log_s)
    seconds = np.exp(np.minimum(log_s, 30.0)).astype(np.float32)
    # float32 rounding must not push a forced dwell back under the threshold.
    floor = np.nextafter(np.float32(dwell_short_s), np.float32(np.inf))
    return np.where(forced & (seconds < dwell_short_s), floor, seconds)


def apply_rules(raw: np.ndarray, exp: Exposures, uniforms: np.ndarray, p_dm: np.ndarray) -> np.ndarray:
    """Structural rules of §9.4.4 on raw latent fires [N, 16] -> int8 actions [N, 18]."""
    acts = np.zeros((raw.shape[0], len(DISCRETE)), dtype=bool)
    acts[:, LATENT_INDEX] = raw
    share = acts[:, _IDX["share"]]
    acts[:, _IDX["share_via_dm"]] = share & (uniforms[:, 0] < p_dm[exp.archetype])
    acts[:, _IDX["share_via_copy_link"]] = share & (uniforms[:, 1] < P_COPY_LINK_GIVEN_SHARE)
    acts[:, _IDX["photo_expand"]] &= exp.media == PHOTO
    acts[:, _IDX["vqv"]] &= exp.media == VIDEO
    acts[:, _IDX["quoted_click"]] &= exp.is_quote
    acts[:, _IDX["follow_author"]] &= ~exp.followed
    negative = acts[:, [_IDX[a] for a in GATING_NEGATIVES]].any(axis=1)
    acts[:, [_IDX[a] for a in CANCELLED_BY_NEGATIVE]] &= ~negative[:, None]
    acts[:, [_IDX[a] for a in GATED_BY_DWELL]] &= acts[:, _IDX["dwell"], None]
    return acts.astype(np.int8)


def _truth_probs(logits, z_dwell, exp, p_dm, dwell_short_s, dwell_long_s) -> np.ndarray:
    """[N, 19] pre-rule firing probabilities π̃ (the truth table, never a training input)."""
    probs = np.zeros((logits.shape[0], len(DISCRETE) + 1))
    latent = special.expit(logits)
    probs[:, LATENT_INDEX] = latent
    share = latent[:, _LAT["share"]]
    probs[:, _IDX["share_via_dm"]] = share * p_dm[exp.archetype]
    probs[:, _IDX["share_via_copy_link"]] = share * P_COPY_LINK_GIVEN_SHARE
    shift = np.log(dwell_short_s / dwell_long_s) + np.log(2.0) * (exp.media == VIDEO)
    probs[:, -1] = special.ndtr(z_dwell + shift / DWELL_SIGMA)
    return probs
