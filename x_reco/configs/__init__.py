"""Typed, frozen configs of x-reco models and the named weight sets of the weighted score."""

from x_reco.configs.phoenix import INIT_MODES, POSITION_MODES, PRESETS, PhoenixConfig, ffn_size

__all__ = ["INIT_MODES", "POSITION_MODES", "PRESETS", "PhoenixConfig", "ffn_size"]
