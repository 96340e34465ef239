"""E4, the audit toolkit on the 18-action space: cosines and the sign-change threshold (spec §8)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from scipy.optimize import brentq

from x_reco.common.actions import NEGATIVE_ACTIONS, POSITIVE_ACTIONS
from x_reco.reward.stakeholders import alpha_weights, cosine

N_POS, N_NEG, N_NEU = len(POSITIVE_ACTIONS), len(NEGATIVE_ACTIONS), 18 - len(POSITIVE_ACTIONS) - len(NEGATIVE_ACTIONS)
LIMITATION = (
    "The cosine ignores the covariance of actions across content (political posts carry both many "
    "reposts and many blocks); the Table 1 platform vector (+0.1..+0.2 on negatives, positive neutrals) "
    "still has a positive inner product with the alpha = 4 society, so 'treats negatives as engagement' "
    "is not sufficient for a negative cosine."
)


@dataclasses.dataclass(frozen=True)
class AuditConfig:
    """Society α (default 4), user α (1), the sweep of the platform's negative weight x (ν = 0) and
    the society α values of the threshold table."""

    society_alpha: float = 4.0
    user_alpha: float = 1.0
    sweep: tuple[float, ...] = tuple(np.round(np.linspace(1.0, -4.0, 101), 4))
    threshold_alphas: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 5.0, 8.0, 10.0)

    def __post_init__(self):
        if self.society_alpha <= 0:
            raise ValueError(f"society_alpha must be > 0, got {self.society_alpha}")

    @classmethod
    def smoke(cls) -> AuditConfig:
        return cls(sweep=tuple(np.round(np.linspace(1.0, -4.0, 21), 4)))


def platform_vector(x: float, neutral: float = 0.0) -> np.ndarray:
    """+1 on positives, ``neutral`` on neutrals, ``x`` on negatives (x = −α in the α family)."""
    return alpha_weights(0.0, neutral=neutral, negative=x)


def closed_form_cos(x: float, neutral: float, society_alpha: float) -> float:
    """cos(platform, society) =
    (n_pos − n_neg α_s x) / sqrt((n_pos + n_neu ν² + n_neg x²)(n_pos + n_neg α_s²))."""
    num = N_POS - N_NEG * society_alpha * x
    return num / np.sqrt((N_POS + N_NEU * neutral**2 + N_NEG * x**2) * (N_POS + N_NEG * society_alpha**2))


def threshold(society_alpha: float) -> float:
    """x* = n_pos / (n_neg α_s): the platform's negative weight where the cosine changes sign."""
    return N_POS / (N_NEG * society_alpha)


def threshold_by_root(society_alpha: float, neutral: float = 0.0) -> float:
    """Cross-check of ``threshold``: Brent's root of the numeric cosine on x ∈ [0, 100]."""
    society = alpha_weights(society_alpha)
    return float(brentq(lambda x: cosine(platform_vector(x, neutral), society), 0.0, 100.0, xtol=1e-12))


SCENARIOS = (  # (name, negative weight x, neutral weight ν, preprint value)
    ("pure engagement (all 18 weights +1)", 1.0, 1.0, -0.31),
    ("negatives +0.5, all others +1", 0.5, 1.0, np.nan),
    ("2023 Phoenix alpha = 0.3", -0.3, 0.0, 0.51),
    ("alpha = 0.1, nu = 0.5", -0.1, 0.5, np.nan),
    ("alpha = 0.3, nu = 0.5", -0.3, 0.5, np.nan),
    ("user-aligned alpha = 1", -1.0, 0.0, 0.84),
    ("safety-first alpha = 2", -2.0, 0.0, 0.97),
    ("alpha = 0, nu = 0", 0.0, 0.0, np.nan),
)


def run_audit(cfg: AuditConfig) -> dict[str, pd.DataFrame]:
    """Table ``audit``: scenario rows, sweep rows (x from +1 to −4, ν = 0) and threshold rows
    (x*(α_s), closed form and root finding)."""
    society, user = alpha_weights(cfg.society_alpha), alpha_weights(cfg.user_alpha)
    x_star = threshold(cfg.society_alpha)
    rows = []
    for name, x, nu, preprint in SCENARIOS:
        p = platform_vector(x, nu)
        rows.append(
            {
                "kind": "scenario",
                "name": name,
                "x": x,
                "nu": nu,
                "alpha_s": cfg.society_alpha,
                "cos_society": cosine(p, society),
                "cos_user": cosine(p, user),
                "cos_society_closed_form": closed_form_cos(x, nu, cfg.society_alpha),
                "preprint": preprint,
                "threshold": x_star,
            }
        )
    for x in cfg.sweep:
        p = platform_vector(float(x))
        rows.append(
            {
                "kind": "sweep",
                "name": "platform negative weight",
                "x": float(x),
                "nu": 0.0,
                "alpha_s": cfg.society_alpha,
                "cos_society": cosine(p, society),
                "cos_user": cosine(p, user),
                "cos_society_closed_form": closed_form_cos(float(x), 0.0, cfg.society_alpha),
                "preprint": np.nan,
                "threshold": x_star,
            }
        )
    for a in cfg.threshold_alphas:
        rows.append(
            {
                "kind": "threshold",
                "name": f"x*(alpha_s = {a:g})",
                "x": threshold(a),
                "nu": 0.0,
                "alpha_s": a,
                "cos_society": 0.0,
                "cos_user": np.nan,
                "cos_society_closed_form": 0.0,
                "preprint": 0.15 if a == 4.0 else np.nan,
                "threshold": threshold(a),
                "threshold_root": threshold_by_root(a),
            }
        )
    return {"audit": pd.DataFrame(rows)}
