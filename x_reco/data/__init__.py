"""Dataset readers, the synthetic world, events, sequences and item features (pure library)."""
