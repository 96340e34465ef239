"""Dagster assets of x-reco: thin adapters over the x_reco library."""
