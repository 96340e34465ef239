"""The For You candidate pipeline (scoring, post store, stages); weight sets are in ``x_reco.configs.weights``."""
