"""The For You candidate pipeline (candidate-pipeline spec; ``docs/feed.md``): ``feed.build_pipeline``
returns the partition's ``FeedPipeline`` over its champion checkpoints. Stages run in ``framework``;
sources, Thunder, state and hydrators, filters, scoring and explanations have a module each. Weight
sets are in ``x_reco.configs.weights`` (configs sit below the pipeline)."""
