"""Bradley-Terry loss variants for a linear reward r(c) = w · p(c) (reward spec §3).

Shapes: N pairs in a minibatch, D features, M pool items. Every loss is a masked mean over the
minibatch (the last partial batch of an epoch is kept, padded rows carry mask 0).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from x_reco.reward.stakeholders import NEG_IDX, POS_IDX

LOSS_KINDS = ("bt", "margin", "hinge", "calibrated", "constrained")
CONSTRAINTS = {"platform": 0, "user": 1, "society": 2}
ACTION_DIM = 18
# The 4 negative actions are the contiguous columns 14-17; a static slice keeps jit traces free of
# index constants (whose dtype would depend on the x64 flag at first trace).
_NEG = slice(int(NEG_IDX.min()), int(NEG_IDX.max()) + 1)
assert list(range(ACTION_DIM)[_NEG]) == sorted(NEG_IDX.tolist())


@dataclasses.dataclass(frozen=True)
class LossSpec:
    """One loss variant and its hyperparameters.

    kind: bt (mean softplus(−Δ)); margin (smooth: mean τ·softplus((m − Δ)/τ)); hinge
    (mean max(0, m − Δ)); calibrated (BT + λ[(σ(r_pref) − e_pref)² + (σ(r_rej) − e_rej)²], targets
    from ``targets``: "leaky" (true utility, the reference) or "labels" (C9 win rates));
    constrained (BT + λ·C_k(w), D = 18 only, k = ``constraint``).
    """

    kind: str = "bt"
    margin: float = 0.5
    tau: float = 0.1
    lam: float = 1.0
    constraint: str = "platform"
    targets: str = "leaky"

    def __post_init__(self):
        if self.kind not in LOSS_KINDS:
            raise ValueError(f"unknown loss kind {self.kind!r}; expected one of {LOSS_KINDS}")
        if self.constraint not in CONSTRAINTS:
            raise ValueError(f"unknown constraint {self.constraint!r}; expected one of {tuple(CONSTRAINTS)}")
        if self.targets not in ("leaky", "labels"):
            raise ValueError(f"calibration targets must be 'leaky' or 'labels', got {self.targets!r}")
        if self.tau <= 0:
            raise ValueError(f"tau must be > 0, got {self.tau}")

    @property
    def name(self) -> str:
        if self.kind == "margin":
            return f"margin_m{self.margin:g}"
        if self.kind == "hinge":
            return f"hinge_m{self.margin:g}"
        if self.kind == "calibrated":
            return f"calibrated_{self.targets}_l{self.lam:g}"
        if self.kind == "constrained":
            return f"constrained_{self.constraint}_l{self.lam:g}"
        return "bt"

    def hyper(self) -> np.ndarray:
        """(margin, tau, lam, constraint code): the per-model vector the vmapped trainer reads."""
        return np.array([self.margin, self.tau, self.lam, CONSTRAINTS[self.constraint]], np.float32)


def pair_terms(kind: str, r_pref, r_rej, e_pref, e_rej, hyper) -> jax.Array:
    """Per-pair loss [N] before averaging; ``hyper`` = (margin, tau, lam, code)."""
    delta = r_pref - r_rej
    margin, tau, lam = hyper[0], hyper[1], hyper[2]
    if kind == "margin":
        return tau * jax.nn.softplus((margin - delta) / tau)
    if kind == "hinge":
        return jnp.maximum(0.0, margin - delta)
    bt = jax.nn.softplus(-delta)
    if kind == "calibrated":
        calib = (jax.nn.sigmoid(r_pref) - e_pref) ** 2 + (jax.nn.sigmoid(r_rej) - e_rej) ** 2
        return bt + lam * calib
    return bt


def penalty(kind: str, w_d, hyper) -> jax.Array:
    """Weight-only term: λ_c·C_k(w) for constrained-BT (user: mean over the 4 negatives of
    max(0, w_a + 0.1); society: max(0, 0.3 − std(w)) over the whole vector; platform: 0)."""
    if kind != "constrained":
        return jnp.zeros((), w_d.dtype)
    user = jnp.mean(jnp.maximum(0.0, w_d[_NEG] + 0.1))
    society = jnp.maximum(0.0, 0.3 - jnp.std(w_d))
    code = hyper[3]
    return hyper[2] * jnp.where(code == 1, user, jnp.where(code == 2, society, 0.0))


def minibatch_loss(kind: str, w_d, xp_nd, xr_nd, ep_n, er_n, mask_n, hyper, l2: float) -> jax.Array:
    """Masked-mean pair loss + weight penalty + l2·‖w‖² for one model."""
    terms = pair_terms(kind, xp_nd @ w_d, xr_nd @ w_d, ep_n, er_n, hyper)
    mean = jnp.sum(terms * mask_n) / jnp.maximum(jnp.sum(mask_n), 1.0)
    return mean + penalty(kind, w_d, hyper) + l2 * jnp.sum(w_d**2)


def check_dimension(spec: LossSpec, d: int) -> None:
    if spec.kind == "constrained" and d != ACTION_DIM:
        raise ValueError(f"constrained-BT needs the {ACTION_DIM}-action features, got D={d}")


def initial_weights(d: int) -> np.ndarray:
    """0.1 everywhere; for the 18-action space +1 on positives, −1 on negatives, 0 on neutrals."""
    if d != ACTION_DIM:
        return np.full(d, 0.1, np.float32)
    w = np.zeros(d, np.float32)
    w[POS_IDX], w[NEG_IDX] = 1.0, -1.0
    return w


def leaky_targets(x_md: np.ndarray, w_d: np.ndarray, synthetic: bool) -> np.ndarray:
    """The reference's calibration targets per item [M]: clip(w_k · p, 0, 1) on real data (the
    stakeholder's own true utility: a leak); clip(Σ positive probabilities / 5 + 0.3, 0, 1) on synthetic."""
    x = np.asarray(x_md, np.float32)
    if synthetic:
        return np.clip(x[:, POS_IDX].sum(axis=1) / 5.0 + 0.3, 0.0, 1.0)
    return np.clip(x @ np.asarray(w_d, np.float32), 0.0, 1.0)


def posthoc_scores(x_md: np.ndarray, base_w: np.ndarray, stakeholder: str, a: float) -> np.ndarray:
    """Post-hoc reranker (no training) on the 18-action space, scores [M]: user = base − a·Σ negative
    probabilities; society = base + a·H(p)/log 18 (action entropy); platform = base."""
    x = np.asarray(x_md, np.float64)
    base = x @ np.asarray(base_w, np.float64)
    if stakeholder == "user":
        return base - a * x[:, NEG_IDX].sum(axis=1)
    if stakeholder == "society":
        entropy = -np.sum(x * np.log(x + 1e-8), axis=1)
        return base + a * entropy / np.log(ACTION_DIM)
    if stakeholder == "platform":
        return base
    raise ValueError(f"unknown stakeholder {stakeholder!r} for the post-hoc reranker")
