"""Session fixtures shared by test modules, and the XLA setting the default test run compiles with."""

import os

import dagster as dg
import pytest

from tests.dagster_resources import tmp_resources

XLA_SWITCH = "JAX_DISABLE_MOST_OPTIMIZATIONS"


def pytest_configure(config):
    """The default run (`-m 'not slow and not gpu'`, `make test`) compiles with most XLA optimizations off.

    Its tests run tiny configs, where XLA's optimization passes cost more than they save: compiling is
    about three quarters of their time (a warm compilation cache ran tests/training and tests/inference
    in 45 s instead of 166 s), and with the optimizations off those two folders took 113 s, the whole
    suite 381 s instead of 523 s on 2 workers, with the same assertions passing. The environment
    carries it to the processes a test starts (CLI, `dg launch`). `-m slow` and `-m gpu` run real-size
    work and keep XLA's default, as do `make demo`, `make bench` and every user run; export
    JAX_DISABLE_MOST_OPTIMIZATIONS=0 to run the default tests with it too.
    """
    expr = config.getoption("markexpr") or ""
    if "not slow" not in expr or "slow" in expr.replace("not slow", ""):  # slow tests selected
        return
    os.environ.setdefault(XLA_SWITCH, "1")
    import jax  # already imported by the fixtures' modules: the flag is read at import, so set it too

    jax.config.update("jax_disable_most_optimizations", os.environ[XLA_SWITCH].lower() in ("1", "true"))


@pytest.fixture(scope="session")
def models_run(tmp_path_factory):
    """One real Dagster run on the small synthetic world, shared by the models, serving and feed tests:
    data, 12-step tiny retriever and ranker, candidate index, model_evaluation (which writes the
    champion record when its blocking checks pass), stakeholder utilities and smoke BT models.
    Returns (storage root, result); the run may be red when the tiny retriever loses to popularity."""
    from assets import research
    from tests.test_assets_models import MODELS, TINY

    tmp = tmp_path_factory.mktemp("models")
    train = {"config": {"num_steps": 12, "overrides_json": TINY}}
    result = dg.materialize(
        [*MODELS, research.stakeholder_utilities, research.bt_reward_models],
        resources=tmp_resources(tmp),
        partition_key="synthetic",
        raise_on_error=False,
        run_config={
            "ops": {
                "raw_tables": {"config": {"synthetic_size": "small"}},
                "retriever_checkpoint": train,
                "ranker_checkpoint": train,
                "bt_reward_models": {"config": {"protocols": ["corrected"]}},
            }
        },
    )
    return tmp, result


@pytest.fixture(scope="session")
def champion_root(models_run):
    """The session run's storage root with a champion pair: the one model_evaluation promoted, else
    (a tiny retriever that lost to popularity) the run's two checkpoints, promoted by hand."""
    import json

    from x_reco.eval.champion import champion_path, promote_champion, read_champion

    tmp, _ = models_run
    if read_champion(champion_path(tmp, "synthetic")) is None:
        record = lambda n: json.loads((tmp / "records" / n / "synthetic.json").read_text())  # noqa: E731
        promote_champion(
            champion_path(tmp, "synthetic"),
            0.5,
            record("retriever_checkpoint")["path"],
            record("ranker_checkpoint")["path"],
        )
    return tmp


@pytest.fixture(scope="session")
def toy_model_records(tmp_path_factory):
    """Checkpoint records of trained toy models (tests/eval/helpers.py), trained once per session."""
    from tests.eval.helpers import toy_records

    return toy_records(tmp_path_factory.mktemp("toy_models"))
