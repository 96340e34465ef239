"""Training of the Phoenix models: config, losses, optimizer, jitted data-parallel loop, checkpoints."""
