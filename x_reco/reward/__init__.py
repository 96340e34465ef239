"""Multi-stakeholder reward models and the Goodhart analyses (reward-goodhart spec); no Dagster here."""

from x_reco.reward.api import (
    AnalysisResult,
    BTConfig,
    PairsConfig,
    StakeholderConfig,
    audit_toolkit,
    bt_reward_models,
    data_budget,
    goodhart_direction,
    labels_not_loss,
    preference_pairs,
    stakeholder_utilities,
)
from x_reco.reward.audit import AuditConfig
from x_reco.reward.budget import BudgetConfig, budget_medians
from x_reco.reward.deviations import deviations_markdown, deviations_table
from x_reco.reward.direction import DirectionConfig
from x_reco.reward.direction_report import direction_summary
from x_reco.reward.labels_loss import LabelsConfig

__all__ = [
    "AnalysisResult",
    "AuditConfig",
    "BTConfig",
    "BudgetConfig",
    "DirectionConfig",
    "LabelsConfig",
    "PairsConfig",
    "StakeholderConfig",
    "audit_toolkit",
    "bt_reward_models",
    "budget_medians",
    "data_budget",
    "deviations_markdown",
    "deviations_table",
    "direction_summary",
    "goodhart_direction",
    "labels_not_loss",
    "preference_pairs",
    "stakeholder_utilities",
]
