"""`clinic sql` on a real, tiny published snapshot, driven through the real command line.

The shell's promise is that it is read-only in the strict sense (no statement writes or reads any
other file) and that it behaves like the DuckDB shell for scripts: every statement printed, the
last one run without `;`, errors reported and reflected in the exit status."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import pty
import re
import select
import shlex
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from tests.conftest import clinic

WORKTREE = Path(__file__).resolve().parent.parent
N_ROWS = 250
NOTE = 'knee, "left" side'  # a comma and a quote: CSV must quote it, JSON escape it


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict[str, Path]:
    """A publish folder with a snapshot, beside a warehouse and a raw export, as on a real machine."""
    root = tmp_path_factory.mktemp("site")
    marts, raw = root / "marts", root / "raw" / "demo"
    marts.mkdir()
    raw.mkdir(parents=True)
    con = duckdb.connect(str(marts / "clinic.duckdb"))
    con.execute("CREATE SCHEMA marts")
    con.execute(f"""
        CREATE TABLE marts.patient_response AS
        SELECT range AS id, 'P' || lpad(range::VARCHAR, 4, '0') AS patient_id,
               CASE WHEN range % 5 = 0 THEN NULL ELSE range * 3 END AS score,
               CASE WHEN range % 2 = 0 THEN '{NOTE.replace("'", "''")}' ELSE 'plain' END AS note,
               (range / 4)::DECIMAL(8, 2) AS change_pct
        FROM range({N_ROWS})""")
    con.execute("COMMENT ON TABLE marts.patient_response IS 'one row per patient'")
    con.execute("COMMENT ON COLUMN marts.patient_response.score IS 'primary measure score'")
    con.execute("CREATE VIEW marts.scored AS SELECT * FROM marts.patient_response WHERE score IS NOT NULL")
    con.execute(f"COPY marts.patient_response TO '{marts / 'patient_response.parquet'}' (FORMAT parquet)")
    con.close()
    warehouse = root / "warehouse.duckdb"
    con = duckdb.connect(str(warehouse))
    con.execute("CREATE TABLE secret_staging AS SELECT 'warehouse-only' AS x")
    con.close()
    (raw / "patients.csv").write_text("patient_id,site_id\nP0001,S1\n")
    (raw / "extra.json").write_text('[{"a": 1}]')
    (root / "payload.sql").write_text("SELECT 'payload-ran' AS marker;\n")
    return {"root": root, "marts": marts, "snapshot": marts / "clinic.duckdb", "warehouse": warehouse,
            "csv": raw / "patients.csv", "json": raw / "extra.json", "payload": root / "payload.sql",
            "parquet": marts / "patient_response.parquet"}


def clinic_sql(marts: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """The real command line in a subprocess, stdin piped (so never a terminal)."""
    return clinic("sql", "--marts", marts, *args, stdin=stdin, timeout=60)


def file_state(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def passwd_lines() -> list[str]:
    try:
        return [line for line in Path("/etc/passwd").read_text().splitlines() if line.strip()]
    except OSError:
        return ["root:x:0:0"]


ATTACKS = [
    "COPY (SELECT 1) TO '{snapshot}'",
    "COPY (SELECT 1) TO '{snapshot}' (USE_TMP_FILE false)",  # DuckDB alone allows this one
    "COPY (SELECT 1) TO '{snapshot}.wal' (USE_TMP_FILE false)",
    "COPY (SELECT 1) TO '{warehouse}'",
    "COPY (SELECT 'x') TO '{csv}' (FORMAT csv)",
    "COPY patient_response TO '{root}/leak.csv'",
    "COPY patient_response FROM '{csv}'",
    "EXPORT DATABASE '{root}/exported'",
    "ATTACH '{warehouse}' AS w",
    "ATTACH ':memory:' AS m",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_csv_auto('/etc/passwd', header = false)",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_parquet('{parquet}')",
    "SELECT * FROM read_json('{json}')",
    "SELECT * FROM '{csv}'",
    "SELECT * FROM glob('/root/*')",
    "SELECT * FROM glob('{root}/*')",
    "CREATE TABLE marts.x AS SELECT 1",
    "CREATE TEMP TABLE x AS SELECT 1",
    "CREATE VIEW v AS SELECT 1",
    "INSERT INTO patient_response (id) VALUES (-1)",
    "UPDATE patient_response SET score = 0",
    "DELETE FROM patient_response",
    "DROP TABLE patient_response",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
    "RESET lock_configuration",
    "SET temp_directory = '{root}/spill'",
    "CALL enable_logging(storage = 'file', storage_path = '{root}/logs')",
    "EXPLAIN ANALYZE CREATE TEMP TABLE x AS SELECT 1",
    "EXPLAIN (ANALYZE) CREATE TEMP TABLE x AS SELECT 1",
    "IMPORT DATABASE '{marts}'",
    ".read {payload}",
]


@pytest.mark.parametrize(("query", "says"), [
    ("INSTALL httpfs", "clinic sql loads no extension; to use one, open the marts' Parquet files in a DuckDB"),
    ("SET threads = 1", "only these can be chosen: CLINIC_DUCKDB_MEMORY_LIMIT"),
    ("SET memory_limit = '1GB'", 'option "memory_limit"'),
    ("SET memory_limit = '1GB'", "CLINIC_DUCKDB_MEMORY_LIMIT (memory)"),
    ("SELECT * FROM '{parquet}'", "each Parquet file of the marts folder holds the same rows as its table"),
])
def test_a_refusal_says_what_to_do_instead(site, query, says):
    """An analyst's everyday refusals name the way that works: a table for a file, an environment
    setting for SET (DuckDB's own text names INSTALL a LOAD and doubles a name's quotes)."""
    out = run_in_process(site["marts"], query.format(**site))
    assert out.returncode == 1 and out.stderr.startswith("clinic sql: read-only: ")
    assert says in out.stderr and '""' not in out.stderr, out.stderr


def run_in_process(marts: Path, query: str) -> subprocess.CompletedProcess:
    """`clinic sql QUERY` through the module's entry point, in this process: the same code path as
    the command line after argparse, without a Python start-up per attack."""
    from pipelines import sql_shell

    out, err = io.StringIO(), io.StringIO()
    args = argparse.Namespace(marts=str(marts), query=query, format="table", max_rows=None)
    status = sql_shell.run(args, stdin=io.StringIO(), out=out, err=err)
    return subprocess.CompletedProcess([], status, out.getvalue(), err.getvalue())


@pytest.mark.parametrize("attack", ATTACKS)
def test_nothing_writes_or_reads_another_file(site, attack):
    before = file_state(site["root"])
    out = run_in_process(site["marts"], attack.format(**site))
    assert out.returncode == 1, out
    assert out.stderr.startswith("clinic sql: read-only: "), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert file_state(site["root"]) == before  # snapshot, warehouse and raw export byte-identical
    assert not any(line in out.stdout + out.stderr for line in passwd_lines())
    assert "payload-ran" not in out.stdout and "warehouse-only" not in out.stdout


@pytest.mark.parametrize("attack", [a for a in ATTACKS if "{snapshot}" in a or "passwd" in a or "ATTACH '" in a
                                    or a.startswith("INSTALL")])
def test_attacks_fail_through_the_command_line(site, attack):
    before = file_state(site["root"])
    out = clinic_sql(site["marts"], attack.format(**site))
    assert out.returncode == 1 and out.stderr.startswith("clinic sql: read-only: "), out
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert file_state(site["root"]) == before
    assert not any(line in out.stdout + out.stderr for line in passwd_lines())


def test_a_piped_script_of_attacks_reports_each_and_runs_the_reads(site):
    before = file_state(site["root"])
    script = "\n".join(a.format(**site) + ("" if a.startswith(".") else ";") for a in ATTACKS)
    out = clinic_sql(site["marts"], stdin=script + "\nSELECT count(*) AS n FROM patient_response;\n")
    assert out.returncode == 1
    errors = out.stderr.strip().splitlines()
    assert len(errors) == len(ATTACKS) and all(e.startswith("clinic sql: read-only: ") for e in errors)
    assert "(statement 1, line 1)" in errors[0] and "(statement 2, line 2)" in errors[1]
    assert str(N_ROWS) in out.stdout
    assert file_state(site["root"]) == before


@pytest.mark.parametrize("query", [
    "SELECT count(*) FROM patient_response",
    "SELECT count(*) FROM clinic.marts.patient_response",
    "FROM scored LIMIT 2",
    "DESCRIBE patient_response",
    "SUMMARIZE patient_response",
    "SHOW TABLES",
    "PRAGMA table_info('patient_response')",
    "PIVOT patient_response ON note USING count(*)",
    "EXPLAIN SELECT * FROM patient_response WHERE score > 3",
    "EXPLAIN ANALYZE SELECT count(*) FROM patient_response",
    "-- a comment first\nSELECT 1 AS one",
    "SET VARIABLE cutoff = 30; SELECT count(*) FROM patient_response WHERE score < getvariable('cutoff')",
    "SELECT table_name, comment FROM duckdb_tables()",
])
def test_ordinary_queries_on_the_snapshot_work(site, query):
    out = clinic_sql(site["marts"], query)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() and not out.stderr


@pytest.mark.parametrize("content", [b"garbage" * 500, b"", None, "no-marts"])
def test_an_unusable_snapshot_gives_one_line_and_exit_2(tmp_path, content):
    marts = tmp_path / "marts"
    marts.mkdir()
    snapshot = marts / "clinic.duckdb"
    if content == "no-marts":
        duckdb.connect(str(snapshot)).close()
    elif content is not None:
        snapshot.write_bytes(content)
    out = clinic_sql(marts, "SELECT 1")
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert "clinic run" in out.stderr and str(snapshot) in out.stderr
    assert out.stdout == ""


def test_piped_csv_has_every_row_properly_quoted(site):
    out = clinic_sql(site["marts"], "--format", "csv", "SELECT * FROM patient_response ORDER BY id")
    assert out.returncode == 0, out.stderr
    rows = list(csv.reader(io.StringIO(out.stdout)))
    assert rows[0] == ["id", "patient_id", "score", "note", "change_pct"]
    assert len(rows) == 1 + N_ROWS
    assert rows[1] == ["0", "P0000", "", NOTE, "0.00"] and rows[2][3] == "plain"


def test_piped_table_shows_every_row_and_every_column(site):
    wide = ", ".join(f"{i} AS column_{i}" for i in range(1, 15))
    out = clinic_sql(site["marts"], f"SELECT * FROM patient_response; SELECT {wide}")
    assert out.returncode == 0, out.stderr
    assert f"P{N_ROWS - 1:04d}" in out.stdout and f"({N_ROWS} rows)" in out.stdout
    assert all(f"column_{i}" in out.stdout for i in range(1, 15))


def test_max_rows_caps_each_result_and_says_so(site):
    table = clinic_sql(site["marts"], "--max-rows", "5", "FROM patient_response ORDER BY id")
    assert "P0004" in table.stdout and "P0005" not in table.stdout
    assert f"({N_ROWS} rows, 5 shown: {N_ROWS - 5} left out" in table.stdout
    data = clinic_sql(site["marts"], "--max-rows", "5", "--format", "csv", "FROM patient_response")
    assert len(data.stdout.splitlines()) == 6 and data.returncode == 0
    assert f"{N_ROWS - 5} of {N_ROWS} rows left out" in data.stderr


def test_json_keeps_types(site):
    out = clinic_sql(site["marts"], "--format", "json",
                     "SELECT id, score, note, change_pct FROM patient_response ORDER BY id LIMIT 3; "
                     "SELECT 0.5::DOUBLE AS f, true AS b, DATE '2024-02-29' AS d, [1, NULL] AS l")
    assert out.returncode == 0, out.stderr
    decoder, text, documents = json.JSONDecoder(parse_float=Decimal), out.stdout, []
    while text.strip():
        document, end = decoder.raw_decode(text.strip())
        documents.append(document)
        text = text.strip()[end:]
    first, second = documents
    assert first[0] == {"id": 0, "score": None, "note": NOTE, "change_pct": Decimal("0.00")}
    assert type(first[1]["id"]) is int and type(first[1]["score"]) is int
    assert second == [{"f": Decimal("0.5"), "b": True, "d": "2024-02-29", "l": [1, None]}]


def test_markdown_is_a_pipe_table(site):
    out = clinic_sql(site["marts"], "--format", "markdown", "SELECT id, note FROM patient_response LIMIT 1")
    assert out.stdout.splitlines()[:3] == ["| id | note |", "| ---: | --- |", f"| 0 | {NOTE} |"]


def test_every_statement_is_printed_and_the_last_needs_no_semicolon(site):
    out = clinic_sql(site["marts"], "--format", "csv",
                     stdin="SELECT 'a;b' AS first; -- a comment; with semicolons\n"
                           "SELECT $$c;d$$ AS second /* ; */;\n"
                           "SELECT \"e;f\" AS third FROM (SELECT 1 AS \"e;f\");\n"
                           "SELECT 1 AS fourth;  SELECT 2 AS fifth\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["first", "a;b", "second", "c;d", "third", "1", "fourth", "1", "fifth", "2"]
    one_shot = clinic_sql(site["marts"], "SELECT 1 AS first; SELECT 2 AS second")
    assert "first" in one_shot.stdout and "second" in one_shot.stdout


def test_dot_commands(site):
    tables = clinic_sql(site["marts"], ".tables")
    assert tables.returncode == 0 and tables.stdout.split() == ["patient_response", "scored"]
    schema = clinic_sql(site["marts"], ".schema patient_response")
    assert schema.returncode == 0, schema.stderr
    assert "-- one row per patient" in schema.stdout
    assert "score BIGINT,  -- primary measure score" in schema.stdout
    assert "change_pct DECIMAL(8,2)" in schema.stdout and "scored" not in schema.stdout
    piped = clinic_sql(site["marts"], stdin=".mode csv\nSELECT 1 AS x;\n.schema nosuch\n.frobnicate\n"
                                            ".tables\n.quit\nSELECT 'after quit';\n")
    assert piped.stdout.split() == ["x", "1", "patient_response", "scored"]
    assert piped.returncode == 1
    errors = piped.stderr.splitlines()
    assert "line 3: no table or view nosuch" in errors[0] and "unknown command .frobnicate" in errors[1]


def test_exit_status(site):
    one_shot = clinic_sql(site["marts"], "SELECT 1 AS one; SELEKT 2; SELECT 3 AS three")
    assert one_shot.returncode == 1 and "three" not in one_shot.stdout  # one-shot stops at the error
    assert one_shot.stderr.startswith("clinic sql: SQL error: Parser Error") and "(statement 2, line 1)" in \
        one_shot.stderr
    piped = clinic_sql(site["marts"], stdin="SELECT 1 AS one;\nSELECT nope FROM patient_response;\n"
                                            "SELECT 3 AS three;\n")
    assert piped.returncode == 1 and "one" in piped.stdout and "three" in piped.stdout
    assert piped.stderr.count("clinic sql:") == 1 and "(statement 2, line 2)" in piped.stderr
    fine = clinic_sql(site["marts"], stdin="SELECT 1;\n")
    assert fine.returncode == 0 and fine.stderr == ""


def test_help_names_only_the_snapshot_and_the_output_options():
    out = subprocess.run([sys.executable, "-m", "pipelines.cli", "sql", "--help"], capture_output=True,
                         text=True, timeout=60, cwd=WORKTREE)
    assert out.returncode == 0
    for option in ("--marts", "--format", "--max-rows", "$CLINIC_MARTS_DIR or data/marts", "read-only"):
        assert option in out.stdout
    for option in ("--raw", "--warehouse", "--rules"):
        assert option not in out.stdout


# ---- interactive mode, through the module's loop with a fake terminal ----------------------------

class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def scripted_input(lines: list):
    """An input() stand-in: returns lines, raises the exceptions given, then EOF; records prompts."""
    prompts, pending = [], list(lines)

    def read(prompt: str) -> str:
        prompts.append(prompt)
        if not pending:
            raise EOFError
        item = pending.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    return read, prompts


def shell_on(site, **kwargs):
    from pipelines.sql_shell import Shell, open_snapshot

    out, err = io.StringIO(), io.StringIO()
    return Shell(open_snapshot(site["snapshot"]), out=out, err=err, **kwargs), out, err


def test_a_second_shell_in_one_process_shares_the_locked_instance(site):
    from pipelines.sql_shell import open_snapshot

    first, second = open_snapshot(site["snapshot"]), open_snapshot(site["snapshot"])
    try:
        for con in (first, second):
            assert con.execute("SELECT count(*) FROM patient_response").fetchall() == [(N_ROWS,)]
            with pytest.raises(duckdb.PermissionException):
                con.execute("SELECT * FROM read_text('/etc/passwd')")
    finally:
        first.close()
        second.close()


def test_interactive_prompts_ctrl_c_and_ctrl_d(site):
    from pipelines.sql_shell import CONTINUATION, PROMPT, interactive

    shell, out, err = shell_on(site, fmt="csv")
    read, prompts = scripted_input(["SELECT 'discarded'", KeyboardInterrupt(), "SELECT 41 +", "1 AS answer;",
                                    "SELECT nope;", ".tables", "SELECT 7 AS pending"])
    status = interactive(shell, read)
    shell.con.close()
    assert status == 1  # one statement failed in the session
    assert prompts[:5] == [PROMPT, CONTINUATION, PROMPT, CONTINUATION, PROMPT]
    assert "discarded" not in out.getvalue()
    assert "answer\n42" in out.getvalue() and "patient_response" in out.getvalue()
    assert "pending\n7" in out.getvalue()  # Ctrl-D runs the last statement
    assert "(statement 2, line 4)" in err.getvalue()  # entered lines are counted


def test_interactive_quit_and_a_clean_session(site):
    from pipelines.sql_shell import interactive

    shell, out, _ = shell_on(site)
    read, prompts = scripted_input(["SELECT 1 AS x;", ".quit", "SELECT 2;"])
    status = interactive(shell, read)
    shell.con.close()
    assert status == 0 and len(prompts) == 2


def test_a_terminal_caps_rows_by_default(site, monkeypatch):
    from pipelines import sql_shell

    out, err = FakeTerminal(), io.StringIO()
    args = argparse.Namespace(marts=str(site["marts"]), query="FROM patient_response ORDER BY id",
                              format="table", max_rows=None)
    assert sql_shell.run(args, stdin=io.StringIO(), out=out, err=err) == 0
    shown = sql_shell.TERMINAL_MAX_ROWS
    assert f"({N_ROWS} rows, {shown} shown: {N_ROWS - shown} left out" in out.getvalue()
    assert f"P{shown - 1:04d}" in out.getvalue() and f"P{shown:04d}" not in out.getvalue()


def test_an_unwritable_history_is_no_error(tmp_path):
    from pipelines.sql_shell import save_history, setup_history

    setup_history(tmp_path)  # a directory: unreadable as a history file
    assert save_history(tmp_path) is False
    assert save_history(tmp_path / "history") is True


def test_statements_split_where_duckdb_sees_a_semicolon():
    from pipelines.sql_shell import is_complete, split_statements

    # duckdb.tokenize gives byte offsets: text before a split must survive multi-byte characters.
    script = "SELECT 'é€😀;' AS x; -- c;\nSELECT $t$a;b$t$ /* ; */;\n;\nSELECT 3"
    assert [(c.sql, c.line) for c in split_statements(script)] == [
        ("SELECT 'é€😀;' AS x;", 1), ("-- c;\nSELECT $t$a;b$t$ /* ; */;", 2), ("SELECT 3", 4)]
    assert is_complete("SELECT 1; -- done") and is_complete("SELECT 'é';")
    for pending in ("SELECT 1", "SELECT 'a;", "SELECT $$a;", "SELECT 1; /* open", "SELECT 1 -- c;", ""):
        assert not is_complete(pending), pending


# --- DuckDB's help kept, display fitted, bounds, Ctrl-C (issues 21 and 23) -----------------------


@pytest.mark.parametrize(("query", "hints"), [
    ("SELECT * FROM patient_respons", ['Did you mean "patient_response"?', "LINE 1: SELECT * FROM patient_respons",
                                       "                      ^"]),
    ("SELECT patient_idd FROM patient_response", ['Candidate bindings: "patient_id"', "               ^"]),
    ("SELECT * FRM patient_response", ["LINE 1: SELECT * FRM patient_response", "                     ^"]),
])
def test_duckdb_error_text_is_passed_through_whole(site, query, hints):
    out = clinic_sql(site["marts"], query)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("clinic sql: SQL error: ") and "(statement 1, line 1)" in out.stderr
    lines = out.stderr.splitlines()
    for hint in hints:
        assert any(line.startswith(hint) for line in lines), (hint, out.stderr)
    # A table the snapshot does not hold (a typo, an internal table): where the published ones are.
    assert ("`.tables` lists the published marts" in out.stderr) == query.endswith("FROM patient_respons")


def test_floats_are_rounded_in_table_mode_only(site):
    query = "SELECT -0.7000000000000028::DOUBLE AS x, 1e-7::DOUBLE AS tiny, 2.5::DOUBLE AS plain"
    table = clinic_sql(site["marts"], query)
    assert table.stdout.splitlines()[2].split(" | ") == ["-0.7", "1e-07", "  2.5"]
    for fmt, exact in (("csv", "-0.7000000000000028"), ("json", "-0.7000000000000028")):
        assert exact in clinic_sql(site["marts"], "--format", fmt, query).stdout


def test_a_wide_table_fits_the_terminal_by_eliding_middle_columns(site, monkeypatch):
    from pipelines import sql_shell

    query = "SELECT " + ", ".join(f"'{c * 10}' AS col_{c}" for c in "abcdefghij")
    monkeypatch.setenv("COLUMNS", "70")
    out = FakeTerminal()
    args = argparse.Namespace(marts=str(site["marts"]), query=query, format="table", max_rows=None)
    assert sql_shell.run(args, stdin=io.StringIO(), out=out, err=io.StringIO()) == 0
    lines = out.getvalue().splitlines()
    assert all(len(line) <= 70 for line in lines[:3])
    header = lines[0].split(" | ")
    # The leading columns, which say which row it is, as many as fit.
    assert [h.strip() for h in header] == ["col_a", "col_b", "col_c", "col_d", "col_e", sql_shell.ELIDED]
    assert "columns left out to fit 70 characters" in out.getvalue()
    piped = clinic_sql(site["marts"], query)  # piped: every column
    assert all(f"col_{c}" in piped.stdout for c in "abcdefghij")
    out = FakeTerminal()  # one column wider than the terminal: cut, and nothing left out
    args.query = "SELECT repeat('x', 200) AS wide"
    assert sql_shell.run(args, stdin=io.StringIO(), out=out, err=io.StringIO()) == 0
    assert out.getvalue().splitlines()[0].strip() == "wide" and "left out" not in out.getvalue()
    assert out.getvalue().splitlines()[2] == "x" * 65 + sql_shell.ELIDED


SLOW = "SELECT count(*) FROM range(100000000000) a WHERE hash(a.range) % 7 = 3"


def test_memory_limit_and_temp_directory_come_from_the_settings(site, tmp_path, monkeypatch):
    monkeypatch.setenv("CLINIC_DUCKDB_MEMORY_LIMIT", "300MB")
    monkeypatch.setenv("CLINIC_SQL_TEMP_DIR", str(tmp_path / "spill"))
    out = clinic_sql(site["marts"], "--format", "csv",
                     "SELECT current_setting('memory_limit') AS m, current_setting('temp_directory') AS t")
    memory, temp = out.stdout.splitlines()[1].split(",")
    assert memory.startswith("286") and temp == str(tmp_path / "spill"), out


@pytest.mark.parametrize("how", ["flag", "setting"])
def test_a_statement_timeout_cancels_the_statement(site, monkeypatch, how):
    if how == "setting":
        monkeypatch.setenv("CLINIC_SQL_TIMEOUT", "1")
    args = ["--timeout", "0.5"] if how == "flag" else []
    out = clinic_sql(site["marts"], *args, stdin=f"{SLOW};\nSELECT 41 + 1 AS answer;\n")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "cancelled after" in out.stderr and "CLINIC_SQL_TIMEOUT" in out.stderr
    assert "42" in out.stdout  # the script goes on after the cancelled statement


def test_a_timeout_stops_a_table_being_formatted_too(site):
    """A table is formatted after its last row arrives: 5 x 10^6 rows took 28 s to print whole,
    then were reported as cancelled after 3 s (found by an operator probe)."""
    out = clinic_sql(site["marts"], "--timeout", "1", "SELECT range AS n FROM range(2000000)")
    assert out.returncode == 1 and "cancelled after 1 s" in out.stderr and "Traceback" not in out.stderr
    assert "1999999" not in out.stdout and "2000000 rows" not in out.stdout


def _started(args: list[str], **kwargs) -> subprocess.Popen:
    """`clinic` in a subprocess with SIGINT at its default (a shell's background job ignores it)."""
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", *args], cwd=WORKTREE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kwargs)


@pytest.mark.parametrize("mode", ["one-shot", "piped"])
def test_ctrl_c_stops_a_slow_statement_with_exit_130(site, mode):
    proc = _started(["sql", "--marts", str(site["marts"]), *([SLOW] if mode == "one-shot" else [])],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if mode == "piped":
        proc.stdin.write(f"{SLOW};\nSELECT 1;\n")
        proc.stdin.flush()
    time.sleep(3)
    assert proc.poll() is None  # still running the slow statement
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and err == "clinic sql: interrupted\n", err


def test_ctrl_c_at_the_prompt_cancels_the_statement_and_returns_to_the_prompt(site):
    leader, follower = pty.openpty()
    proc = _started(["sql", "--marts", str(site["marts"])], stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    seen = b""

    def read_until(marker: bytes, within: float = 30) -> bytes:
        nonlocal seen
        end = time.monotonic() + within
        while marker not in seen and time.monotonic() < end:
            if select.select([leader], [], [], 0.2)[0]:
                try:
                    seen += os.read(leader, 65536)
                except OSError:
                    break
        assert marker in seen, seen
        return seen

    try:
        read_until(b"clinic> ")
        os.write(leader, SLOW.encode() + b";\n")
        time.sleep(3)
        proc.send_signal(signal.SIGINT)
        read_until(b"interrupted")
        os.write(leader, b"SELECT 41 + 1 AS answer;\n")
        read_until(b"42")
        os.write(leader, b".quit\n")
        assert proc.wait(timeout=30) == 1  # a statement of the session failed (the interrupted one)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
    assert b"Traceback" not in seen


def test_a_closed_pipe_ends_quietly(site):
    cmd = (f"{shlex.quote(sys.executable)} -m pipelines.cli sql --marts {shlex.quote(str(site['marts']))} "
           "'SELECT * FROM range(200000)' | head -1")
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=60, cwd=WORKTREE)
    assert out.stdout.strip() == "range" and out.stderr == "", out.stderr


def test_csv_output_neutralises_formulas(site):
    out = clinic_sql(site["marts"], "--format", "csv",
                     "SELECT '=HYPERLINK(\"x\")' AS \"=f\", '-2-3-4' AS id, -5 AS n, '@cmd' AS a, '+1' AS p")
    assert out.stdout.splitlines() == ["'=f,id,n,a,p", "\"'=HYPERLINK(\"\"x\"\")\",'-2-3-4,-5,'@cmd,+1"]


def test_table_output_sends_no_control_character_to_the_terminal(site):
    out = clinic_sql(site["marts"], "SELECT chr(27) || '[2J' || chr(10) || chr(155) AS \"x\x07\", 1 AS n")
    assert out.returncode == 0 and not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", out.stdout), out.stdout
    assert "\\x1B[2J\\n\\x9B" in out.stdout and "x\\x07" in out.stdout
