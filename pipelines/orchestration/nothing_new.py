"""The run history's record of a run that had nothing to do.

When the inputs are those the published set was built from (pipelines/orchestration/
fingerprint.py), `clinic run` does no work, but the run is still in the Dagster run
history, as one step that says so: a run of `clinic_nothing_new`, tagged with the run whose
set stays published. Cheap (Dagster's import and one step, none of the assets' imports).
"""

import dagster as dg

NOTHING_NEW_SINCE = "clinic/nothing_new_since"


def nothing_new_message(previous_run: str) -> str:
    return (f"nothing new since run {previous_run[:8]}: the same exports, rules, contract, checks, "
            "expectations, SQL and code; the published set stays as it is (to run anyway, reusing what "
            "did not change: clinic run --force)")


@dg.op(description="Says that the inputs are those the published set was built from, and which run built it.")
def nothing_new(context: dg.OpExecutionContext) -> dg.Output:
    previous = context.run.tags.get(NOTHING_NEW_SINCE, "")
    context.log.info(nothing_new_message(previous))
    return dg.Output(None, metadata={"published_by_run": previous,
                                     "fingerprint": context.run.tags.get("clinic/fingerprint", "")})


@dg.job(name="clinic_nothing_new", executor_def=dg.in_process_executor,
        description="A clinic run that found nothing new (same exports, rules, code): no work, the published "
                    "set kept; the tag clinic/nothing_new_since names the run that published it.")
def nothing_new_job():
    nothing_new()


def record_nothing_new(instance: dg.DagsterInstance, previous_run: str, digest: str, tags: dict) -> str:
    """Put the nothing-new run in `instance`'s history; its run id."""
    result = nothing_new_job.execute_in_process(
        instance=instance, raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
        tags={**tags, NOTHING_NEW_SINCE: previous_run, "clinic/fingerprint": digest})
    return result.run_id
