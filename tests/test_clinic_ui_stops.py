"""`clinic ui` as a script starts it (`clinic ui &`: SIGINT ignored) stops on SIGTERM or
SIGINT with every process it started, and opens without Dagster's e-mail modal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from pipelines.orchestration.instance import ensure_dagster_home
from tests.test_dagster_ui import _free_port, wait_for_webserver


def _session_members(sid: int) -> list[int]:
    """Live processes of a session (the UI, its webserver, daemon and code servers)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def _graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(f"{url}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(request, timeout=60).read())["data"]


def test_a_home_written_before_keeps_its_settings_and_loses_the_modal(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    ensure_dagster_home(home)
    assert "telemetry" in (home / "dagster.yaml").read_text()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.nux_enabled is False
    with dg.DagsterInstance.from_config(str(ensure_dagster_home(tmp_path / "new").parent)) as instance:
        assert instance.nux_enabled is False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_clinic_ui_started_from_a_script_stops_on_a_signal(tmp_path, signum):
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster_home"), "CLINIC_RAW_DIR": str(tmp_path / "raw")}

    def as_a_script_starts_it():  # a non-interactive shell's `&` ignores SIGINT in the child
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    server = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "ui", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=as_a_script_starts_it)
    try:
        url = wait_for_webserver(server, port)
        assert _graphql(url, "{ shouldShowNux }") == {"shouldShowNux": False}
        assert len(_session_members(server.pid)) > 1  # the webserver and daemon run beside it
        os.kill(server.pid, signum)  # to the one process a script knows, as `kill $pid` does
        server.wait(timeout=90)
        deadline = time.monotonic() + 30
        while _session_members(server.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _session_members(server.pid) == []
    finally:
        if server.poll() is None or _session_members(server.pid):
            try:
                os.killpg(server.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            server.wait(timeout=30)
