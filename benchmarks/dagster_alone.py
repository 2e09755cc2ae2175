"""What a run costs before any of its work: the project's graph run with no work in it.

    python -m benchmarks.dagster_alone DAGSTER_HOME   # one hollow run; prints its seconds

The hollow job has the real Definitions' steps, assets and checks (read from
`build_definitions`, so it follows the graph as it changes), each step materialising its
assets and passing its checks without doing anything, in process, on a persistent Dagster
instance in `DAGSTER_HOME`, as `clinic run` runs. Its time is the part of every run that no
SQL, validation or page changes: Python's and Dagster's start, the definitions, the run's
event-log writes. The benchmark times it beside the contenders (`dagster_alone`), so a ratio
target can be read against what is left for the work. It writes no log lines: a real run adds
about 30 progress lines to the event log.
"""

from __future__ import annotations

import sys
import time

import dagster as dg


def _hollow_step(step: dg.AssetsDefinition) -> dg.AssetsDefinition:
    """A step with the same name, assets (keys, deps, groups) and checks, doing nothing."""
    specs, check_specs = list(step.specs), list(step.check_specs)

    @dg.multi_asset(name=step.op.name, specs=specs, check_specs=check_specs)
    def hollow(context):  # noqa: ARG001 - Dagster passes it
        for spec in specs:
            yield dg.MaterializeResult(asset_key=spec.key)
            for check in check_specs:
                if check.asset_key == spec.key:
                    yield dg.AssetCheckResult(asset_key=spec.key, check_name=check.name, passed=True)

    return hollow


def hollow_definitions() -> dg.Definitions:
    """The project's steps, assets and checks, none of them doing any work."""
    from pipelines.definitions import build_definitions

    real = build_definitions()
    return dg.Definitions(assets=[_hollow_step(step) for step in real.assets],
                          executor=dg.in_process_executor)


def main(argv: list[str]) -> int:
    from pipelines.cli import QUIET_DAGSTER  # as `clinic run` logs: to the event log, not the console

    started = time.perf_counter()
    with dg.DagsterInstance.from_config(argv[0]) as instance:
        job = hollow_definitions().resolve_implicit_global_asset_job_def()
        result = job.execute_in_process(run_config=QUIET_DAGSTER, instance=instance)
        events = len(instance.all_logs(result.run_id))
    print(f"hollow run {result.run_id[:8]}: {'ok' if result.success else 'FAILED'}, {events} events, "
          f"{time.perf_counter() - started:.2f} s after the imports")
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
