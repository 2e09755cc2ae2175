"""A project-local Dagster home: run history survives restarts, warehouse runs never overlap."""

from __future__ import annotations

from pathlib import Path

DAGSTER_YAML = """\
# Written by `clinic ui`. Runs that write the warehouse are queued one at a time.
run_queue:
  max_concurrent_runs: 1
  tag_concurrency_limits:
    - key: dagster/concurrency_key
      value: warehouse
      limit: 1
telemetry:
  enabled: false
# No "Join the Dagster community" e-mail modal on the UI's first open.
nux:
  enabled: false
"""


def ensure_dagster_home(home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML, encoding="utf-8")
    elif "\nnux:" not in "\n" + (text := config.read_text(encoding="utf-8")):
        # A home written before the modal was switched off: add the setting, keep the rest.
        config.write_text(text.rstrip("\n") + "\nnux:\n  enabled: false\n", encoding="utf-8")
    return config
