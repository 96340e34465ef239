"""Calibrates per-(archetype, topic, action) base logits so post-rule rates hit §9.5 (§9.4.5)."""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import special

from x_reco.data.synthetic.config import (
    ARCHETYPES,
    MEDIA_PROBS,
    QUOTE_PROB,
    TOPIC_SHARES,
    TOPICS,
    WorldConfig,
)
from x_reco.data.synthetic.engagement import (
    PHOTO,
    VIDEO,
    Exposures,
    draw_noise,
    firing_keys,
    sample_engagement,
)
from x_reco.data.synthetic.entities import B_U_SD, QUALITY_SD, TASTE_SD, largest_remainder
from x_reco.data.synthetic.targets import (
    AROUSAL,
    CANCELLED_BY_NEGATIVE,
    DISCRETE,
    GATING_NEGATIVES,
    LATENT_ACTIONS,
    LATENT_INDEX,
    MEDIA_ACTION,
    NEGATIVE,
    P_DM_GIVEN_SHARE,
    target_rates,
    taste_anchors,
)

# A gated action cannot exceed the share of draws its gate lets through (favorite .70 vs dwell
# .60 in three cells of §9.5); aim at this fraction of the way from the floor to the ceiling
# instead of pinning c at ±∞.
FEASIBLE_FRACTION = 0.95
_LAT = {name: i for i, name in enumerate(LATENT_ACTIONS)}
_MEAN_INITIAL_FOLLOWS = 17.5  # uniform 5..30


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Calibrated base logits [archetype, topic, 16] and the diagnostics written to the manifest."""

    base_logits: np.ndarray
    targets: np.ndarray  # [archetype, topic, 18] §9.5 targets
    effective_targets: np.ndarray  # [archetype, topic, 18] after the feasibility cap
    mc_rates: np.ndarray  # [archetype, topic, 18] post-rule Monte Carlo rates
    follow_share: np.ndarray  # [archetype, topic] P(author followed) assumed by the sample

    def thresholds(self) -> np.ndarray:
        """[archetype, topic, 16] latent thresholds Φ⁻¹(1 - sigmoid(c)) at zero personal offset."""
        return -special.ndtri(special.expit(self.base_logits))

    def to_manifest(self) -> dict:
        """JSON-ready nested dicts keyed archetype -> topic -> action."""

        def nest(values: np.ndarray, names: tuple[str, ...]) -> dict:
            return {
                a: {t: {n: float(v) for n, v in zip(names, values[i, j], strict=True)} for j, t in enumerate(TOPICS)}
                for i, a in enumerate(ARCHETYPES)
            }

        capped = np.argwhere(self.effective_targets < self.targets - 1e-12)
        return {
            "thresholds": nest(self.thresholds(), LATENT_ACTIONS),
            "base_logits": nest(self.base_logits, LATENT_ACTIONS),
            "targets": nest(self.targets, DISCRETE),
            "effective_targets": nest(self.effective_targets, DISCRETE),
            "mc_rates": nest(self.mc_rates, DISCRETE),
            "follow_share": {
                a: dict(zip(TOPICS, map(float, row), strict=True))
                for a, row in zip(ARCHETYPES, self.follow_share, strict=True)
            },
            "capped": [[ARCHETYPES[i], TOPICS[j], DISCRETE[k]] for i, j, k in capped],
            "max_abs_error": float(np.max(np.abs(self._latent_errors()))),
        }

    def _latent_errors(self) -> np.ndarray:
        return (self.mc_rates - self.effective_targets)[..., LATENT_INDEX]


def follow_share(config: WorldConfig) -> np.ndarray:
    """[archetype, topic] expected share of a topic's exposures that come from followed authors.

    Uses the initial follow graph (5-30 follows ∝ exp(2 θ)) and the exposure mix; ignores later
    follows and blocks, which is what the tolerance of the calibration tests absorbs.
    """
    n_topic = largest_remainder(config.num_authors, TOPIC_SHARES).astype(float)
    num_follows = min(_MEAN_INITIAL_FOLLOWS, config.num_authors // 2)
    # The post's topic is the author's with probability 0.9, else uniform.
    mix = 0.9 * np.eye(len(TOPICS)) + 0.1 / len(TOPICS)
    anchors = taste_anchors()
    share = np.zeros_like(anchors)
    s = config.in_network_share
    for a in range(len(ARCHETYPES)):
        weights = n_topic * np.exp(2.0 * anchors[a])
        followed = np.minimum(num_follows * weights / weights.sum(), n_topic)
        inside = followed @ mix
        outside = ((n_topic - followed) @ mix) * np.exp(config.personalization * anchors[a])
        inside, outside = inside / inside.sum(), outside / outside.sum()
        share[a] = s * inside / (s * inside + (1.0 - s) * outside)
    return share


def _sample_exposures(rng, arch: int, topic: int, n: int, p_follow: float, config: WorldConfig) -> Exposures:
    """n exposures of one cell drawn from the generator's own distributions."""
    anchor = taste_anchors()[arch, topic]
    followed = rng.random(n) < p_follow
    # Out-of-network picks weigh posts by exp(0.3 q_p), tilting q_p's mean by 0.3 Var(q_p).
    tilt = 0.3 * 2 * QUALITY_SD**2 * ~followed
    return Exposures(
        archetype=np.full(n, arch),
        topic=np.full(n, topic),
        b_u=rng.normal(0.0, B_U_SD, n),
        taste_dev=np.clip(anchor + rng.normal(0.0, TASTE_SD, n), -1.0, 1.0) - anchor,
        quality=tilt + rng.normal(0.0, np.sqrt(2.0) * QUALITY_SD, n),
        followed=followed,
        position=rng.integers(0, config.feed_length, n),
        media=rng.choice(len(MEDIA_PROBS), size=n, p=MEDIA_PROBS),
        is_quote=rng.random(n) < QUOTE_PROB,
    )


def bisect_base_logits(
    keys: np.ndarray,
    gate: np.ndarray,
    force: np.ndarray,
    denom: np.ndarray,
    targets: np.ndarray,
    tol: float,
    max_iter: int = 80,
) -> np.ndarray:
    """Per column, bisect c so that the share of ((keys < c) & gate) | force hits the target.

    keys, gate, force: [N, K]; denom, targets: [K]. The rate is non-decreasing in c and the
    targets lie strictly between the floor (force) and the ceiling (gate | force), so bisection
    converges to within tol.
    """
    lo, hi = np.full(len(targets), -30.0), np.full(len(targets), 30.0)
    for _ in range(max_iter):
        mid = 0.5 * (lo + hi)
        rate = (((keys < mid) & gate) | force).sum(axis=0) / denom
        if np.all(np.abs(rate - targets) <= tol):
            return mid
        above = rate > targets
        hi, lo = np.where(above, mid, hi), np.where(above, lo, mid)
    return 0.5 * (lo + hi)


def _media_masks(exp: Exposures) -> dict[str, np.ndarray]:
    return {"photo": exp.media == PHOTO, "video": exp.media == VIDEO, "quote": exp.is_quote}


def _gated_stage(exp, dwell, negative, cols) -> tuple[np.ndarray, np.ndarray]:
    """Gate [N, K] and denominator [K] of the actions cancelled by rules, given final gates."""
    masks = _media_masks(exp)
    gate = np.repeat(dwell[:, None], len(cols), axis=1)
    denom = np.full(len(cols), float(len(dwell)))
    for k, name in enumerate(cols):
        if name in CANCELLED_BY_NEGATIVE:
            gate[:, k] &= ~negative
        if name == "follow_author":
            gate[:, k] &= ~exp.followed
        if name in MEDIA_ACTION:
            gate[:, k] &= masks[MEDIA_ACTION[name]]
            denom[k] = max(masks[MEDIA_ACTION[name]].sum(), 1)
    return gate, denom


def _solve(keys, names, gate, force, denom, targets, tol, base, effective) -> np.ndarray:
    """Bisect the columns `names` in place (after capping infeasible targets); return the fires."""
    cols = [_LAT[a] for a in names]
    floor, ceiling = force.sum(axis=0) / denom, (gate | force).sum(axis=0) / denom
    upper = floor + FEASIBLE_FRACTION * (ceiling - floor)
    effective[cols] = np.clip(targets[cols], np.minimum(floor / FEASIBLE_FRACTION, upper), upper)
    base[cols] = bisect_base_logits(keys[:, cols], gate, force, denom, effective[cols], tol)
    return ((keys[:, cols] < base[cols]) & gate) | force


def _calibrate_cell(exp, noise, targets, tol) -> tuple[np.ndarray, np.ndarray]:
    """Base logits [16] and effective targets [16] (LATENT_ACTIONS order) of one cell.

    The rules form a chain without cycles, so three bisection stages, each holding the earlier
    stages' outcomes fixed, hit every target in one pass. Stage 1: the negatives and the arousal
    actions, which no rule cancels; stage 2: dwell, which the arousal actions force; stage 3:
    everything else, cancelled by the earlier stages.
    """
    keys = firing_keys(exp, noise)
    n = keys.shape[0]
    base, effective = np.zeros(len(LATENT_ACTIONS)), targets.copy()

    def ones(k, value=True):
        return np.full((n, k), value)

    first = (*NEGATIVE, *AROUSAL)
    fires = _solve(
        keys,
        first,
        ones(len(first)),
        ones(len(first), False),
        np.full(len(first), float(n)),
        targets,
        tol,
        base,
        effective,
    )
    negative = fires[:, [first.index(a) for a in GATING_NEGATIVES]].any(axis=1)
    forced = fires[:, [first.index(a) for a in AROUSAL]].any(axis=1, keepdims=True)
    dwell = _solve(keys, ("dwell",), ones(1), forced, np.array([float(n)]), targets, tol, base, effective)[:, 0]
    rest = tuple(a for a in LATENT_ACTIONS if a not in (*first, "dwell"))
    gate, denom = _gated_stage(exp, dwell, negative, rest)
    _solve(keys, rest, gate, np.zeros_like(gate), denom, targets, tol, base, effective)
    return base, effective


def _post_rule_rates(exp, noise, base_logits, config) -> np.ndarray:
    """[18] post-rule rates; media-specific actions over exposures of that media type."""
    eng = sample_engagement(exp, noise, base_logits, P_DM_GIVEN_SHARE, config.dwell_short_s, config.dwell_long_s)
    rates = eng.actions.mean(axis=0, dtype=float)
    for name, media in MEDIA_ACTION.items():
        mask = _media_masks(exp)[media]
        rates[DISCRETE.index(name)] = eng.actions[mask, DISCRETE.index(name)].mean()
    return rates


def calibrate(config: WorldConfig, rng: np.random.Generator) -> Calibration:
    """Bisect every cell's base logits on `config.calibration_draws` Monte Carlo exposures."""
    targets = target_rates()
    shares = follow_share(config)
    shape = targets.shape[:2]
    base = np.zeros((*shape, len(LATENT_ACTIONS)))
    effective, mc_rates = targets.copy(), np.zeros_like(targets)
    # Stop a little inside the tolerance so the final rule pass cannot drift outside it.
    tol = config.calibration_tol / 5
    for a, t in np.ndindex(shape):
        exp = _sample_exposures(rng, a, t, config.calibration_draws, shares[a, t], config)
        noise = draw_noise(rng, config.calibration_draws)
        base[a, t], effective[a, t, LATENT_INDEX] = _calibrate_cell(exp, noise, targets[a, t, LATENT_INDEX], tol)
        mc_rates[a, t] = _post_rule_rates(exp, noise, base, config)
    result = Calibration(base, targets, effective, mc_rates, shares)
    worst = float(np.max(np.abs(result._latent_errors())))
    if worst > config.calibration_tol:
        raise RuntimeError(f"calibration missed a target by {worst:.4f} > {config.calibration_tol}")
    return result
