"""The For You candidate pipeline: weights, scoring, post store and stages."""
