"""Run-level config pre-flight: every step's config is validated before the first step starts.

Dagster checks run config against the config *schema* (types) when a run is launched, but the range
and name checks of x-reco's ``Config`` classes (their pydantic validators: ``num_steps=-5``, an unknown
preset, ``batch_size: 0`` inside ``overrides_json``) run only when a step builds its config, so a job
whose last step had a bad value first spent minutes on the steps before it. ``preflight_executor``
wraps Dagster's default executor (multiprocess, or in-process through ``execution: {config:
{in_process: {}}}``): before it starts any step it builds the ``Config`` of every step in the plan from
the run config, and fails the run with every bad field named when one does not validate. Every job
and the implicit asset job (``Definitions(executor=...)``) use it. It also rejects a run whose
partition tag is not one of its job's partitions (a run launched from the UI's launchpad or with
``dagster job launch --tags``; the CLIs' ``--partition`` is checked earlier, by
``resources.storage.NamedPartitions``), instead of letting its first step fail on the name.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import dagster as dg
import pydantic

from resources.storage import unknown_partition_message

PARTITION_TAG = "dagster/partition"  # the run tag Dagster stores a run's partition key in


class RunConfigError(ValueError):
    """A run's config does not validate; raised before any step of the run starts."""


def config_class(op_def: dg.OpDefinition) -> type[dg.Config] | None:
    """The ``Config`` class an op's (asset's) compute function takes as ``config``, if any."""
    fn = op_def.compute_fn
    if not hasattr(fn, "has_config_arg") or not fn.has_config_arg():
        return None
    annotation = fn.get_config_arg().annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, dg.Config) else None


def preflight_errors(job_def: dg.JobDefinition, run_config: Mapping, step_keys: list[str] | None = None) -> list[str]:
    """One line per step whose config does not validate: ``<step>: <field>: <message>``. Only the
    steps in ``step_keys`` (the plan's steps) are checked when it is given."""
    ops_config = (run_config or {}).get("ops") or {}
    errors = []
    for name, node in sorted(job_def.graph.node_dict.items()):
        if step_keys is not None and name not in step_keys:
            continue
        cls = config_class(node.definition)
        if cls is None:
            continue
        fields = (ops_config.get(name) or {}).get("config") or {}
        try:
            cls(**fields)
        except pydantic.ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"]) or "config"
                errors.append(f"{name}: {where}: {err['msg'].removeprefix('Value error, ')}")
    return errors


def partition_error(job_def: dg.JobDefinition, tags: Mapping[str, str]) -> str | None:
    """``partition: <message>`` when the run's partition tag is not a key of its job's partitions."""
    key, partitions = (tags or {}).get(PARTITION_TAG), job_def.partitions_def
    if key is None or partitions is None or partitions.has_partition_key(key):
        return None
    return "partition: " + unknown_partition_message(key, partitions.get_partition_keys())


class PreflightExecutor(dg.Executor):
    """Validates the run's step configs, then hands the plan to the wrapped executor."""

    def __init__(self, inner: dg.Executor):
        self._inner = inner

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config

    def execute(self, plan_context, execution_plan) -> Iterator:
        job_def = plan_context.job.get_definition()
        errors = preflight_errors(job_def, plan_context.run_config, list(execution_plan.step_keys_to_execute))
        bad_partition = partition_error(job_def, plan_context.dagster_run.tags)
        errors = [bad_partition, *errors] if bad_partition else errors
        if errors:
            plan_context.log.error("run config rejected before any step ran:\n" + "\n".join(errors))
            raise RunConfigError(
                f"run config rejected before any step ran ({len(errors)} problem(s)):\n" + "\n".join(errors)
            )
        yield from self._inner.execute(plan_context, execution_plan)


_DEFAULT = dg.multi_or_in_process_executor


@dg.executor(
    name="preflight_multi_or_in_process",
    config_schema=_DEFAULT.config_schema,
    requirements=_DEFAULT.get_requirements,
)
def preflight_executor(init_context) -> PreflightExecutor:
    """Dagster's default executor (same config) behind the run-config pre-flight."""
    return PreflightExecutor(_DEFAULT.executor_creation_fn(init_context))
