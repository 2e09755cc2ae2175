"""Great Expectations in a process of its own, started with a run and kept, reset, for the next run in the same process.

Importing GX takes ~2.5 s of pure Python. In the run's process that time holds the GIL
and stalls every Dagster step (a background thread did not help); in a worker process
it overlaps ingest on the other core. The run hands each sample over as a Parquet file
and gets one outcome per expectation back, one JSON line per request:

    request  {"reset": true} (a new run: drop every validation so far), or
             {"data": "<file.parquet>", "suite": "<expectations/x.json>", "table": "<name>",
              "rules": "<rules/response_rules.yaml>" (what the suite's rule references read; optional),
              "group_by": ["export_id", ...], "groups": [["<export>", ...], ...] (optional: one
              validation of many groups, say exports, split into each group's outcomes),
              "run": {"name": "run <Dagster run id> at <its start> UTC"} (names the validation in
              the Data Docs instead of GX's `__none__`; optional)}
    reply    {"reset": true}, or {"rows": <rows validated>, "outcomes": [ExpectationOutcome as a dict, ...]}
             (with groups: "groups": [[ExpectationOutcome as a dict, ...], ...], one per group)
             or {"error": "<what went wrong>"}
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TextIO

from pipelines.quality.gx_validation import ExpectationOutcome, columns_read
from pipelines.sqlfiles import quote_literal


def serve(requests: TextIO, replies: TextIO) -> None:
    """Answer requests until the run closes the pipe."""
    import pandas as pd

    from pipelines.quality.gx_validation import build_data_docs, reset, validate_frame, validate_groups

    for line in requests:
        request = json.loads(line)
        try:
            if "reset" in request:  # a new run: forget every validation (and Data Docs site) so far
                reset()
                reply = {"reset": True}
            elif "data_docs" in request:
                reply = {"index": str(build_data_docs(Path(request["data_docs"])))}
            else:
                frame = pd.read_parquet(request["data"])
                rules = Path(request["rules"]) if request.get("rules") else None
                run = run_identifier(request.get("run"))
                if "groups" in request:
                    per_group = validate_groups(frame, Path(request["suite"]), request["table"],
                                                request["group_by"], request["groups"], rules, run)
                    reply = {"rows": len(frame), "groups": [[asdict(o) for o in g] for g in per_group]}
                else:
                    outcomes = validate_frame(frame, Path(request["suite"]), request["table"], rules, run)
                    reply = {"rows": len(frame), "outcomes": [asdict(o) for o in outcomes]}
        except Exception as error:  # noqa: BLE001 - reported to the run, which fails the check
            reply = {"error": f"{type(error).__name__}: {error}"}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


def run_identifier(run: dict | None):
    """GX's RunIdentifier for a request's run, or None (GX's `__none__`). Its run_time stays
    GX's own (the validation's time): a run validates one suite once per export, and GX files
    each result under suite/run name/run time, so one time for the whole run would keep only
    the last export's result."""
    if not run:
        return None
    from great_expectations.core.run_identifier import RunIdentifier

    return RunIdentifier(run_name=run["name"])


def run_name(dagster_run_id: str, started: datetime) -> str:
    """A validation's run name in the Data Docs: the Dagster run's short id and start, as the
    run summary and the dashboards name a run, the time written as export names write it (the
    Data Docs make a folder of the name, and a colon cannot be in a Windows folder name)."""
    return f"run {dagster_run_id[:8]} at {started:%Y-%m-%dT%H%M} UTC"


def main() -> None:
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # what GX prints goes to the log
    from pipelines.quality.gx_validation import _context

    _context()  # import GX and build its context now, before the first request
    serve(sys.stdin, replies)


# Every worker of this process not yet closed (step_back lowers their priority).
_live: set[GxWorker] = set()

# How far a worker steps back (its nice value, of 0..19) while the run loads a large file.
STEP_BACK_NICENESS = 10


def step_back() -> None:
    """Lower the priority of this process's workers for the rest of their lives: called as the
    run starts loading a file large enough to keep DuckDB on every core for seconds, so that
    GX's ~3 s import, started with the run, takes a core only when DuckDB leaves one idle. Not
    from the start: on a small run the import has a core of its own until the first validation,
    and behind the run's own Python a worker started at low priority was not ready by then
    (+0.2-0.5 s on a warm run at 10^5 patients). Only ever lowered: without privileges a process
    cannot raise it again."""
    for worker in list(_live):
        worker.lower_priority(STEP_BACK_NICENESS)


# A worker ready for this process's next run: started early by `clinic run`, or parked (reset)
# by the run before. At most one; stopped when this process exits (or when its pipe closes).
_spare: list[GxWorker] = []


def start_early() -> None:
    """Start the run's worker now, before Dagster is even imported: `clinic run` calls
    this first thing, so the ~3 s GX start-up hides behind Dagster's and the ingest's."""
    if not _spare:
        _spare.append(GxWorker())


def take_or_start() -> GxWorker:
    """The spare worker, if it is still running, or a new one."""
    while _spare:
        worker = _spare.pop()
        if worker.running():
            return worker
        worker.close()
    return GxWorker()


def park(worker: GxWorker) -> None:
    """Keep a finished run's worker for the next run in this process instead of stopping it:
    importing GX costs ~3-5 s of CPU a run (tests; runs in a long-lived process). It is reset
    first, so the next run's validations and Data Docs start empty; one that cannot be reset,
    or one more than the single spare, is stopped."""
    try:
        worker.reset()
    except RuntimeError:
        worker.close()
        return
    if _spare:
        worker.close()
    else:
        _spare.append(worker)


@atexit.register
def _stop_spare() -> None:
    while _spare:
        _spare.pop().close()


WORK_PREFIX = "clinic-gx-"


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_work_dirs(tmp_root: Path | None = None) -> None:
    """Folders of workers whose run died (killed before it could clean up): they hold
    patient-level samples, so the next worker removes them."""
    for folder in Path(tmp_root or tempfile.gettempdir()).glob(f"{WORK_PREFIX}*"):
        pid = folder.name[len(WORK_PREFIX):].split("-", 1)[0]
        if folder.is_dir() and pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _absolute(path: Path | None) -> str | None:
    """A path as the worker must get it: absolute, since its working folder is the one this
    process had when it started (a kept worker outlives a change of folder), and GX refuses a
    relative Data Docs folder (`clinic run --marts data/marts` failed at its last step)."""
    return str(Path(path).absolute()) if path else None


class GxWorker:
    """The run's side: start the worker, send it samples, stop it. Samples and the worker's
    log live in one folder named for this process, removed when the worker is closed (or,
    after a kill, by the next worker)."""

    def __init__(self) -> None:
        remove_stale_work_dirs()
        self._work = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-"))
        self._log = open(self._work / "worker.log", "w+b")  # noqa: SIM115 - closed in close()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "pipelines.quality.gx_worker"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._log, text=True)
        self._lock = threading.Lock()
        self._run: dict | None = None  # the Dagster run the validations belong to (name_run)
        _live.add(self)

    def lower_priority(self, niceness: int) -> None:
        """Set the worker's nice value to `niceness` unless it is that low already (a process
        may lower its children's priority, never raise it back)."""
        try:
            if self.priority() < niceness:
                os.setpriority(os.PRIO_PROCESS, self._process.pid, niceness)
        except OSError:  # it has just stopped: its next request says so
            pass

    def priority(self) -> int:
        """The worker's nice value."""
        return os.getpriority(os.PRIO_PROCESS, self._process.pid)

    def name_run(self, dagster_run_id: str, started: datetime) -> None:
        """Name this worker's validations after the Dagster run (its id and start time)."""
        self._run = {"name": run_name(dagster_run_id, started)}

    def validate(self, con, query: str, suite_file: Path, table_name: str, rules_file: Path | None = None
                 ) -> tuple[int, list[ExpectationOutcome]]:
        """Rows validated and one outcome per expectation, for the rows `query` returns (the
        suite's rule references read from `rules_file`)."""
        reply = self._validate(con, query, {"suite": _absolute(suite_file), "table": table_name,
                                            "rules": _absolute(rules_file)})
        return reply["rows"], [ExpectationOutcome(**o) for o in reply["outcomes"]]

    def validate_groups(self, con, query: str, suite_file: Path, table_name: str, group_by: list[str],
                        groups: list[tuple], rules_file: Path | None = None
                        ) -> tuple[int, list[list[ExpectationOutcome]]]:
        """Rows validated and, for each of `groups` (values of the `group_by` columns of the
        rows `query` returns), the outcomes it gets validated alone: one request for them all
        (gx_validation.validate_groups)."""
        reply = self._validate(con, query, {"suite": _absolute(suite_file), "table": table_name,
                                            "rules": _absolute(rules_file), "group_by": list(group_by),
                                            "groups": [list(g) for g in groups]})
        return reply["rows"], [[ExpectationOutcome(**o) for o in g] for g in reply["groups"]]

    def _validate(self, con, query: str, request: dict) -> dict:
        """Hand the rows of `query` over as Parquet with `request`, only the columns its suite
        reads (gx_validation.columns_read); the worker's reply."""
        columns = columns_read(Path(request["suite"]), tuple(request.get("group_by", ())))
        if columns is not None:
            names = ", ".join(map(quote_literal, columns))
            query = f"SELECT COLUMNS(lambda c: list_contains([{names}], c)) FROM ({query})"
        with self._lock:
            data = self._work / "sample.parquet"
            con.execute(f"COPY ({query}) TO {quote_literal(str(data))} (FORMAT parquet)")
            reply = self._ask({"data": str(data), **request, "run": self._run})
            data.unlink(missing_ok=True)
        if "error" in reply:
            raise RuntimeError(f"Great Expectations could not validate {request['table']} with "
                               f"{request['suite']}: {reply['error']}")
        return reply

    def running(self) -> bool:
        return self._process.poll() is None

    def reset(self) -> None:
        """Drop every validation so far (a new run starts with none); raises if it cannot."""
        with self._lock:
            reply = self._ask({"reset": True})
        if "error" in reply:
            raise RuntimeError(f"the Great Expectations worker could not be reset: {reply['error']}")

    def build_data_docs(self, folder: Path) -> Path:
        """Great Expectations' Data Docs of everything this worker validated, into `folder`."""
        with self._lock:
            reply = self._ask({"data_docs": _absolute(folder)})
        if "error" in reply:
            raise RuntimeError(f"Great Expectations could not build its Data Docs: {reply['error']}")
        return Path(reply["index"])

    def _ask(self, request: dict) -> dict:
        """One request, one JSON reply line (the caller holds the lock); a worker that has
        stopped is reported with the end of its log."""
        try:
            self._process.stdin.write(json.dumps(request) + "\n")
            self._process.stdin.flush()
            line = self._process.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            raise RuntimeError(self._stopped_message())
        return json.loads(line)

    def _stopped_message(self) -> str:
        self._log.flush()
        tail = Path(self._log.name).read_text(errors="replace")[-2000:]
        return (f"the Great Expectations worker stopped (exit code {self._process.poll()}); check that "
                f"`python -m pipelines.quality.gx_worker` starts in this environment. Its log "
                f"({self._log.name}) ends:\n{tail}")

    def close(self) -> None:
        """Stop the worker without waiting for GX's own shutdown: it holds nothing to save."""
        _live.discard(self)
        self._process.kill()
        self._process.wait()
        self._log.close()
        shutil.rmtree(self._work, ignore_errors=True)


if __name__ == "__main__":
    main()
