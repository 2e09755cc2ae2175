"""Smoke test: `clinic ui` (dagster dev with a project-local home) serves the project's assets, checks, schedule and sensor."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.slow  # starts dagster dev

QUERY = """{
  assetNodes { assetKey { path } groupName
    assetChecksOrError { ... on AssetChecks { checks { name blocking } } } }
  repositoriesOrError { ... on RepositoryConnection { nodes {
    schedules { name cronSchedule } sensors { name } } } }
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_webserver(server: subprocess.Popen, port: int) -> str:
    """The UI's address once its webserver answers (the process must stay up meanwhile)."""
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/server_info", timeout=2)
            return url
        except OSError:
            assert server.poll() is None, server.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "webserver did not start within 120 s"
            time.sleep(0.5)


def test_clinic_ui_serves_the_asset_graph_schedule_and_sensor(tmp_path):
    port = _free_port()
    home = tmp_path / "dagster_home"
    env = {**os.environ, "DAGSTER_HOME": str(home), "CLINIC_RAW_DIR": str(tmp_path / "raw")}
    server = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "ui", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        url = wait_for_webserver(server, port)
        request = urllib.request.Request(f"{url}/graphql", data=json.dumps({"query": QUERY}).encode(),
                                         headers={"Content-Type": "application/json"})
        data = json.loads(urllib.request.urlopen(request, timeout=60).read())["data"]
    finally:
        # Ctrl-C, as a person would: dagster dev then stops its webserver, daemon and code servers.
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
    assert "max_concurrent_runs: 1" in (home / "dagster.yaml").read_text()
    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    assert {"export_plan", "loaded_measurements", "staged_measurements", "patient_response",
            "response_by_indication", "data_quality", "clinic_snapshot", "dashboards"} <= set(nodes)
    assert nodes["loaded_patients"]["groupName"] == "ingest"
    checks = {c["name"]: c["blocking"] for c in nodes["reconciliation"]["assetChecksOrError"]["checks"]}
    assert checks == {"rows_reconcile": True}
    # Every table's producer is an asset the graph shows.
    assert {"reconciliation", "export_profiles", "dataset_expectations", "mart_expectations", "measure_values",
            "dose_periods", "gx_data_docs", "release_preview", "published_set"} <= set(nodes)
    repo = data["repositoriesOrError"]["nodes"][0]
    assert sorted(s["name"] for s in repo["schedules"]) == ["clinic_daily", "release_schedule"]
    assert [s["name"] for s in repo["sensors"]] == ["new_export_sensor"]
