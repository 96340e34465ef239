"""Folder that `dg` scans for component definitions; x-reco declares its assets in `assets/`."""
