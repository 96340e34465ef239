"""Training of the Phoenix models: config, optimizer, jitted data-parallel loop, resumable runs."""
