"""Run tags that the jobs set and the assets read (both layers import them from here)."""

# A run tagged so (retrain_job) warm-starts its models from the partition's champion whatever its run
# config says: `dg launch` sends the run config it was given, not a job's default config, so a tag on
# the job is what makes every run of it a warm start.
WARM_START_TAG = "x-reco/warm-start"

# inference_benchmark's grid when its run config names none (bench_job: the inference issue's grid).
BENCH_GRID_TAG = "x-reco/bench-grid"
