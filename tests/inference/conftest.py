"""Shared fixtures of the inference tests: f32 equality tests run under highest matmul precision."""

import jax
import pytest


@pytest.fixture(autouse=True)
def _highest_matmul_precision():
    with jax.default_matmul_precision("highest"):
        yield
