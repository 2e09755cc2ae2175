"""A release cadence: the schedule that makes a release by itself when the setting says so.

Off by default (CLINIC_RELEASE_CADENCE=off): releasing is an act someone decides on. With
`weekly` (Mondays) or `monthly` (the 1st) the schedule runs `release_job` at 07:00 UTC, an hour
after the daily run, which does what `clinic release` does (and is refused the same way).
"""

import dagster as dg

from pipelines.config import ClinicConfig


def release_due(cadence: str, weekday: int, day: int) -> bool:
    """Is a release due on this day (weekday 0 = Monday) under the cadence?"""
    return cadence == "weekly" and weekday == 0 or cadence == "monthly" and day == 1


@dg.op(description="Make the next release from the published set (what `clinic release` does).")
def make_next_release(context: dg.OpExecutionContext, clinic: ClinicConfig) -> None:
    from pipelines.config import ConfigError
    from pipelines.release.ledger import make_release
    from pipelines.release.protection import Refused

    try:
        release = make_release(clinic)
    except Refused as refused:
        raise dg.Failure(description=f"release refused: {refused.reason}") from None
    except ConfigError as below_floor:
        raise dg.Failure(description=f"release refused: {below_floor}") from None
    context.log.info(f"release {release.release_id} made: {clinic.release_dir}")


@dg.job(description="Make the next release (the release cadence's job; `clinic release` does the same).")
def release_job() -> None:
    make_next_release()


@dg.schedule(job=release_job, cron_schedule="0 7 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Makes a release when CLINIC_RELEASE_CADENCE (weekly: Mondays, monthly: the 1st) "
                         "says one is due; off by default, then it skips every day.")
def release_schedule(context: dg.ScheduleEvaluationContext, clinic: ClinicConfig):
    when = context.scheduled_execution_time
    if when is None or not release_due(clinic.release_cadence, when.weekday(), when.day):
        return dg.SkipReason(f"release cadence {clinic.release_cadence!r}: no release due today")
    return dg.RunRequest(run_key=f"release:{when:%Y-%m-%d}")
