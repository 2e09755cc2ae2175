"""`clinic sql`: the analyst's shell on the published snapshot, read-only in the strict sense.

The snapshot is opened read-only and DuckDB is then locked down (no file system access, no
extension loading, configuration locked), so no statement can write the snapshot, the warehouse
or an export, nor read any host file. On top of that only statement types that read are run at
all: DuckDB itself would allow `CREATE TEMP TABLE` on a read-only database.

Statements are split with DuckDB's own tokenizer (`duckdb.tokenize`), which knows quotes,
comments and dollar-quoting; `extract_statements` is not used for splitting because it rejects a
whole script when one statement has a syntax error, and a piped script must go on after an error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import shlex
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO

import duckdb

from pipelines.csv_safe import SafeWriter
from pipelines.settings import SETTINGS, ConfigError, add_marts_option, setting_value
from pipelines.sqlfiles import quote_literal

FORMATS = ("table", "csv", "json", "markdown")
TERMINAL_MAX_ROWS = 40
HISTORY_FILE = Path("~/.clinic_sql_history")
PROMPT = "clinic> "
CONTINUATION = "   ...> "
BATCH = 2048

ST = duckdb.StatementType
# Statement types that only read. Everything else (CREATE, INSERT, COPY, ATTACH, LOAD, EXPORT, ...)
# is refused before DuckDB sees it; locked settings and file access inside these are refused by DuckDB.
READ_TYPES = {ST.SELECT, ST.EXPLAIN, ST.PRAGMA, ST.SET, ST.VARIABLE_SET, ST.CALL, ST.TRANSACTION, ST.MULTI}
# Types whose result is a table worth printing (SET, BEGIN, ... answer a bare "Success").
RESULT_TYPES = {ST.SELECT, ST.EXPLAIN, ST.PRAGMA, ST.CALL, ST.MULTI}
READ_ONLY_HINTS = ("read-only mode", "configuration has been locked", "disabled by configuration",
                   "disabled through configuration")
FILE_DOT_COMMANDS = {".read", ".import", ".output", ".once", ".open", ".save", ".backup", ".restore",
                     ".shell", ".system", ".cd", ".log", ".excel", ".dump"}

HELP = """\
Dot commands (at the start of a line):
  .tables            the snapshot's tables and views
  .schema [TABLE]    columns with types and comments (all relations without TABLE)
  .mode FORMAT       table, csv, json or markdown
  .maxrows N         print at most N rows per result (0: all)
  .help              this text
  .quit, .exit       leave (Ctrl-D too)
SQL statements end with ; (the last one may omit it). The snapshot is read-only: statements
that write or read other files (COPY, ATTACH, INSTALL, LOAD, read_csv, glob, CREATE, ...) fail."""


# Order matters: the memory cap and temp_directory cannot be changed once external access is off
# (spill files go to the settings' folder, never beside the snapshot), and nothing once the
# configuration is locked. DuckDB keeps the snapshot's own path writable even so (COPY ... TO it
# with USE_TMP_FILE false overwrites it), which is why COPY is refused by statement type as well.
LOCKDOWN = ("python_enable_replacements = false", "enable_external_access = false",
            "autoinstall_known_extensions = false", "autoload_known_extensions = false",
            "lock_configuration = true")


def _bounds() -> tuple[str, str]:
    """The memory cap (CLINIC_DUCKDB_MEMORY_LIMIT) and spill folder (CLINIC_SQL_TEMP_DIR) of a shell."""
    temp = str(setting_value("sql_temp_dir"))
    if temp == SETTINGS["sql_temp_dir"].default:
        temp = str(Path(tempfile.gettempdir()) / "clinic_sql")
    return str(setting_value("duckdb_memory_limit")), temp


class SnapshotError(Exception):
    """The snapshot cannot be opened; the message says what to do."""


def open_snapshot(path: str | Path) -> duckdb.DuckDBPyConnection:
    """Open the published snapshot read-only and lock DuckDB down so no statement reaches a file."""
    path = Path(path)
    if not path.exists():
        raise SnapshotError(f"no published snapshot at {path}: run `clinic run` first "
                            "(or point --marts / $CLINIC_MARTS_DIR at the publish folder)")
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as error:
        raise SnapshotError(f"cannot open the snapshot {path} ({_first_line(error)}): "
                            "run `clinic run` to publish it again") from None
    try:
        con.execute("SET search_path = 'marts'")
    except duckdb.Error:
        con.close()
        raise SnapshotError(f"{path} has no schema marts, so it is not a clinic snapshot: "
                            "run `clinic run` to publish it again") from None
    # Connections to one file in one process share a database instance, and so its settings: a
    # second shell in this process finds the instance locked down already.
    locked, external = con.execute("SELECT current_setting('lock_configuration'), "
                                   "current_setting('enable_external_access')").fetchall()[0]
    if locked and not external:
        return con
    if locked:
        con.close()
        raise SnapshotError(f"{path} is already open in this process with its configuration locked "
                            "and file access on; open it in a new process")
    memory, temp = _bounds()
    try:
        con.execute(f"SET memory_limit = {quote_literal(memory)}")
        con.execute(f"SET temp_directory = {quote_literal(temp)}")
    except duckdb.Error as error:
        con.close()
        raise SnapshotError(f"cannot apply CLINIC_DUCKDB_MEMORY_LIMIT={memory!r} or CLINIC_SQL_TEMP_DIR={temp!r} "
                            f"({_first_line(error)}): set a size such as 1GB and a writable folder") from None
    for setting in LOCKDOWN:
        con.execute(f"SET {setting}")
    return con


def _install_sigint(handler):
    """Set SIGINT's handler and return the one before; nothing when SIGINT is ignored (a
    background job) or this is not the main thread (only it may set handlers)."""
    if handler is None:
        return None
    try:
        if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
            return None
        return signal.signal(signal.SIGINT, handler)
    except ValueError:
        return None


CHECK_EVERY = 10_000  # rows a writer formats between two looks at whether it was stopped


class _Cancelled(Exception):
    """The statement was stopped while its rows were printed."""


def _whole(error: BaseException, where: str) -> str:
    """DuckDB's message whole, as its own shell shows it (Did you mean..., candidate bindings, the
    LINE 1: ... ^ caret): the first line, where, then the rest on their own lines."""
    lines = str(error).strip("\n").splitlines() or [type(error).__name__]
    rest = "\n".join(lines[1:]).strip("\n")
    return f"{lines[0]} {where}" + (f"\n{rest}" if rest else "")


def _tables_hint(error: BaseException) -> str:
    """For a table the snapshot does not hold, where the ones it holds are listed: DuckDB's own
    guess names the closest of every table it knows, system views included."""
    if isinstance(error, duckdb.CatalogException) and str(error).startswith("Catalog Error: Table with name"):
        return ("\n`.tables` lists the published marts; a table the run keeps in its warehouse only "
                "(not published) is not in the snapshot")
    return ""


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _tokens(data: bytes) -> list[tuple[int, duckdb.token_type]]:
    """DuckDB's tokens of `data`; positions are byte offsets into its UTF-8 encoding."""
    try:
        return duckdb.tokenize(data.decode())
    except Exception:  # the tokenizer gives up: treat the text as one opaque word
        return [(0, duckdb.token_type.identifier)] if data.strip() else []


def _is_semicolon(data: bytes, token: tuple[int, duckdb.token_type]) -> bool:
    return token[1] == duckdb.token_type.operator and data[token[0]:token[0] + 1] == b";"


def _is_open(text: str) -> bool:
    """Whether `text` ends inside a string, a quoted name, a dollar quote or a block comment."""
    data = (text + "\n;").encode()
    tokens = _tokens(data)
    return not tokens or not (_is_semicolon(data, tokens[-1]) and tokens[-1][0] == len(data) - 1)


def _code_tokens(data: bytes) -> list[tuple[int, duckdb.token_type]]:
    return [t for t in _tokens(data) if t[1] != duckdb.token_type.comment]


def is_blank(text: str) -> bool:
    """Only whitespace and finished comments: nothing to run, and a dot command may follow."""
    return not _code_tokens(text.encode()) and not _is_open(text)


def is_complete(text: str) -> bool:
    """A buffer is ready to run when its last token (comments aside) is a `;` outside any quote."""
    data = text.encode()
    code = _code_tokens(data)
    return bool(code) and _is_semicolon(data, code[-1]) and not _is_open(text)


@dataclass(frozen=True)
class Chunk:
    sql: str
    line: int  # 1-based line of its first token within the text it came from


def split_statements(text: str) -> list[Chunk]:
    """Statements of a script, split at the `;` tokens DuckDB's tokenizer sees (so not inside quotes,
    comments or dollar quotes); a last statement without `;` is kept, empty statements are not."""
    data = text.encode()
    chunks, start, first = [], 0, None
    for token in _tokens(data):
        if token[1] == duckdb.token_type.comment:
            continue
        if _is_semicolon(data, token):
            if first is not None:
                chunks.append(Chunk(data[start:token[0] + 1].decode().strip(), data.count(b"\n", 0, first) + 1))
            start, first = token[0] + 1, None
        elif first is None:
            first = token[0]
    if first is not None:
        chunks.append(Chunk(data[start:].decode().strip(), data.count(b"\n", 0, first) + 1))
    return chunks


def _explained_statement(sql: str) -> str | None:
    """The statement after `EXPLAIN [ANALYZE] [(options)]`, so it can be checked like any other."""
    data = sql.encode()
    code = _code_tokens(data)
    i = 1 if code and data[code[0][0]:code[0][0] + 7].lower() == b"explain" else None
    if i is None:
        return None
    if i < len(code) and data[code[i][0]:code[i][0] + 7].lower() in (b"analyze", b"analyse"):
        i += 1
    if i < len(code) and data[code[i][0]:code[i][0] + 1] == b"(":
        depth = 0
        while i < len(code):
            char = data[code[i][0]:code[i][0] + 1]
            depth += (char == b"(") - (char == b")")
            i += 1
            if depth == 0:
                break
    return data[code[i][0]:].decode() if i < len(code) else None


def _refusal(con: duckdb.DuckDBPyConnection, statement) -> str | None:
    """Why a statement is refused before it runs, or None if it only reads. The text that will run
    is parsed again, so what runs is exactly what was checked."""
    try:
        kinds = [s.type for s in con.extract_statements(statement.query)]
    except duckdb.Error:
        return None  # DuckDB reports the syntax error itself when it runs
    for kind in [statement.type, *kinds]:
        if kind == ST.LOAD:  # INSTALL parses as a LOAD statement too
            return ("INSTALL and LOAD statements are not allowed: clinic sql loads no extension; to use one, "
                    "open the marts' Parquet files in a DuckDB of your own")
        if kind not in READ_TYPES:
            return f"{kind.name} statements are not allowed: the snapshot is read-only"
    if len(kinds) != 1:
        return "one statement at a time"
    if statement.type == ST.EXPLAIN:
        # The whole EXPLAIN parsed, so an inner statement that does not is this module's misreading:
        # refuse rather than run what was not checked.
        inner = _explained_statement(statement.query)
        try:
            inner_types = [s.type for s in con.extract_statements(inner)] if inner else []
        except duckdb.Error:
            inner_types = []
        if not inner_types:
            return "EXPLAIN of a statement clinic sql cannot check is not allowed"
        for inner_kind in inner_types:
            if inner_kind not in READ_TYPES:
                return f"EXPLAIN of {inner_kind.name} statements is not allowed: the snapshot is read-only"
    return None


def _is_read_only_error(error: duckdb.Error) -> bool:
    text = str(error)
    return isinstance(error, duckdb.PermissionException) or any(h in text for h in READ_ONLY_HINTS)


def _read_only_advice(error: duckdb.Error) -> str:
    """What to do instead, for the lockdown's two refusals an analyst meets: a setting, a file."""
    text = str(error)
    if "configuration has been locked" in text:
        return ("; clinic sql's settings are fixed when it starts, and only these can be chosen: "
                f"{SETTINGS['duckdb_memory_limit'].env} (memory), {SETTINGS['sql_temp_dir'].env} (spill folder), "
                f"--timeout or {SETTINGS['sql_timeout'].env} (time)")
    if "Cannot access file" in text or "file system operations are disabled" in text:
        return ("; clinic sql reads no file: the published marts are its tables (`.tables` lists them; "
                "each Parquet file of the marts folder holds the same rows as its table)")
    return ""


# ---- rendering -----------------------------------------------------------------------------------

def _bytes_text(value: bytes) -> str:
    return "".join(chr(b) if 32 <= b < 127 and b != 92 else f"\\x{b:02X}" for b in value)


def text_value(value: object, null: str = "NULL") -> str:
    """A value as the DuckDB shell would show it in a table or CSV cell."""
    if value is None:
        return null
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, bytes | bytearray | memoryview):
        return _bytes_text(bytes(value))
    return str(value)


def json_value(value: object) -> str:
    """JSON text for a value: integers stay integers, decimals stay exact, NULL and NaN are null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "null"
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else "null"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {json_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(json_value(v) for v in value) + "]"
    return json.dumps(text_value(value), ensure_ascii=False)


NUMERIC_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL"}


class _Writer:
    """One result set in one format; rows arrive in batches so CSV and JSON stream."""

    def __init__(self, out: IO[str], columns: list[str], numeric: list[bool],
                 cancelled: Callable[[], bool] = lambda: False):
        self.out, self.columns, self.numeric, self.cancelled = out, columns, numeric, cancelled

    def check_cancelled(self, done: int) -> None:
        """Stop a long formatting loop every CHECK_EVERY rows once the statement is stopped
        (Ctrl-C, --timeout): a table is formatted after its last row arrives."""
        if done % CHECK_EVERY == 0 and self.cancelled():
            raise _Cancelled

    def begin(self) -> None: ...

    def rows(self, batch: list[tuple]) -> None: ...

    def end(self, shown: int, total: int) -> None: ...


def display_value(value: object) -> str:
    """A value as a table shows it: floats rounded to 6 decimals (no `-0.7000000000000028`, no
    `-0`), small ones in 6 significant digits; CSV, JSON and Parquet keep every digit."""
    if isinstance(value, float) and math.isfinite(value):
        if value != 0 and abs(value) < 1e-4:
            return f"{value:.6g}"
        text = f"{value:.6f}".rstrip("0").rstrip(".")
        return "0" if text == "-0" else text
    return CONTROL.sub(lambda m: _escaped(m.group()), text_value(value))


CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _escaped(char: str) -> str:
    """A control character as table output shows it (never sent to the terminal as such)."""
    return {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(char, f"\\x{ord(char):02X}")


ELIDED = "…"  # the column standing for the columns a narrow terminal leaves out, as DuckDB's shell


def terminal_width(out: IO[str]) -> int | None:
    """How wide a table may be on a terminal: $COLUMNS, else the terminal's width. Piped output
    has no limit (a script gets every column, as it gets every row)."""
    if not out.isatty():
        return None
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(out.fileno()).columns or None
    except (OSError, ValueError, AttributeError):
        return None


def fit_columns(widths: list[int], limit: int | None) -> list[int | None]:
    """The columns to show, None where the ones left out stand: the leading columns as many as fit
    (a result's first columns usually say which row it is: keys, then measures), then the last
    one if it still fits."""
    if limit is None or sum(widths) + 3 * (len(widths) - 1) <= limit or len(widths) == 1:
        return list(range(len(widths)))  # (a lone column wider than the terminal is cut, not left out)
    last = len(widths) - 1
    used, left = len(ELIDED), []
    for k in range(last):
        if used + widths[k] + 3 > limit:
            break
        left.append(k)
        used += widths[k] + 3
    return (left or [0]) + [None] + ([last] if used + widths[last] + 3 <= limit else [])


class _TableWriter(_Writer):
    def begin(self) -> None:
        self.kept: list[tuple] = []

    def rows(self, batch: list[tuple]) -> None:
        self.kept.extend(batch)

    def end(self, shown: int, total: int) -> None:
        cells = []
        for i, row in enumerate(self.kept):
            self.check_cancelled(i)
            cells.append([display_value(v) for v in row])
        columns = [display_value(c) for c in self.columns]
        widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
        limit = terminal_width(self.out)
        keep = fit_columns(widths, limit)
        cap = max(8, limit - 4) if limit else None  # one column wider than the terminal is cut

        def cut(text: str, width: int) -> str:
            return text if len(text) <= width else text[:width - 1] + ELIDED

        shown_widths = [len(ELIDED) if k is None else min(widths[k], cap or widths[k]) for k in keep]

        def line(values: list[str]) -> str:
            parts = []
            for k, w in zip(keep, shown_widths, strict=True):
                if k is None:
                    parts.append(ELIDED)
                else:
                    v = cut(values[k], w)
                    parts.append(v.rjust(w) if self.numeric[k] else v.ljust(w))
            return " | ".join(parts).rstrip()

        print(line(columns), file=self.out)
        print("-+-".join("-" * w for w in shown_widths), file=self.out)
        for i, row in enumerate(cells):
            self.check_cancelled(i)
            print(line(row), file=self.out)
        if None in keep:
            print(f"({len(self.columns) - len(keep) + 1} of {len(self.columns)} columns left out to fit "
                  f"{limit} characters; set COLUMNS or use --format csv for all)", file=self.out)
        noun = "row" if total == 1 else "rows"
        if shown < total:
            print(f"({total} {noun}, {shown} shown: {total - shown} left out; "
                  "use --max-rows 0 or .maxrows 0 for all)", file=self.out)
        else:
            print(f"({total} {noun})", file=self.out)


class _ExplainWriter(_TableWriter):
    """EXPLAIN answers (key, plan text): print the plan as text, as the DuckDB shell does."""

    def end(self, shown: int, total: int) -> None:
        for row in self.kept:
            print(row[-1], file=self.out)


class _CsvWriter(_Writer):
    """CSV with formula-looking text neutralised (pipelines/csv_safe.py), as every CSV the project writes."""

    def begin(self) -> None:
        self.writer = SafeWriter(self.out, lineterminator="\n")
        self.writer.writerow(self.columns)

    def rows(self, batch: list[tuple]) -> None:
        self.writer.writerows([text_value(v, null="") for v in row] for row in batch)


class _JsonWriter(_Writer):
    """One JSON array of objects per statement, one object per line."""

    def begin(self) -> None:
        self.keys = [json.dumps(c, ensure_ascii=False) for c in self.columns]
        self.first = True
        self.out.write("[")

    def rows(self, batch: list[tuple]) -> None:
        for row in batch:
            self.out.write(("" if self.first else ",\n")
                           + "{" + ", ".join(f"{k}: {json_value(v)}" for k, v in zip(self.keys, row, strict=True))
                           + "}")
            self.first = False

    def end(self, shown: int, total: int) -> None:
        self.out.write("]\n")


class _MarkdownWriter(_Writer):
    @staticmethod
    def _cell(value: str) -> str:
        return value.replace("\\", "\\\\").replace("|", "\\|").replace("\n", "<br>")

    def begin(self) -> None:
        print("| " + " | ".join(self._cell(c) for c in self.columns) + " |", file=self.out)
        print("| " + " | ".join("---:" if n else "---" for n in self.numeric) + " |", file=self.out)

    def rows(self, batch: list[tuple]) -> None:
        for row in batch:
            print("| " + " | ".join(self._cell(text_value(v)) for v in row) + " |", file=self.out)

    def end(self, shown: int, total: int) -> None:
        print(file=self.out)  # a blank line, so the next statement's table is a table of its own


WRITERS = {"table": _TableWriter, "csv": _CsvWriter, "json": _JsonWriter, "markdown": _MarkdownWriter}


# ---- the shell -----------------------------------------------------------------------------------

class Shell:
    """Runs scripts line by line like the DuckDB shell: dot commands at the start of a line when no
    statement is pending, SQL buffered until it ends with `;`, a last statement run at end of input.
    Counts failures so the exit status can say whether any statement failed."""

    def __init__(self, con: duckdb.DuckDBPyConnection, out: IO[str] = sys.stdout, err: IO[str] = sys.stderr,
                 fmt: str = "table", max_rows: int | None = None, bail: bool = False, timeout: float = 0):
        self.con, self.out, self.err = con, out, err
        self.fmt, self.max_rows, self.bail = fmt, max_rows, bail
        self.timeout = timeout
        self.cancel = threading.Event()  # set when Ctrl-C or the timeout stops the running statement
        self.failures = 0
        self.statements = 0
        self.stopped = False
        self.interactive = False  # Ctrl-C then cancels one statement, not the whole script
        self.lines: list[str] = []
        self.first_line = 1

    # -- input --
    @property
    def pending(self) -> bool:
        """Whether a statement has begun and waits for more lines."""
        return bool(self.lines)

    def clear(self) -> None:
        self.lines = []

    def feed(self, line: str, lineno: int) -> bool:
        """Take one input line; False once `.quit` was given or (one-shot) a statement failed."""
        if self.stopped:
            return False
        if not self.lines and is_blank(line):
            return True
        if not self.lines and line.lstrip().startswith("."):
            self.dot(line.strip(), lineno)
            return not self.stopped
        if not self.lines:
            self.first_line = lineno
        self.lines.append(line)
        text = "\n".join(self.lines)
        if is_blank(text):  # a finished multi-line comment: nothing pending any more
            self.clear()
        elif is_complete(text):
            self.clear()
            self.run_sql(text, self.first_line)
        return not self.stopped

    def finish(self) -> int:
        """End of input: run what is left (a last statement without `;`), return the exit status."""
        if self.lines and not self.stopped:
            text = "\n".join(self.lines)
            self.clear()
            self.run_sql(text, self.first_line)
        return self.status()

    def status(self) -> int:
        return 1 if self.failures else 0

    def run_lines(self, lines) -> int:
        """Feed an iterable of lines (a piped script or a one-shot argument) and finish."""
        for lineno, line in enumerate(lines, 1):
            if not self.feed(line.rstrip("\r\n"), lineno):
                return self.status()
        return self.finish()

    # -- errors --
    def fail(self, message: str) -> None:
        self.failures += 1
        print(f"clinic sql: {message}", file=self.err, flush=True)
        if self.bail:
            self.stopped = True

    # -- SQL --
    def run_sql(self, text: str, first_line: int = 1) -> None:
        for chunk in split_statements(text):
            if self.stopped:
                return
            self.statements += 1
            where = f"(statement {self.statements}, line {first_line + chunk.line - 1})"
            self._run_statement(chunk.sql, where)

    def _run_statement(self, sql: str, where: str) -> None:
        try:
            statements = self.con.extract_statements(sql)
        except duckdb.Error as error:
            self.fail(f"SQL error: {_whole(error, where)}")
            return
        for statement in statements:
            refusal = _refusal(self.con, statement)
            if refusal:
                self.fail(f"read-only: {refusal} {where}")
                return
            cause, error = self._bounded(lambda s=statement: self._execute(s, where))
            if cause == "interrupt":
                if not self.interactive:
                    raise KeyboardInterrupt
                self.fail(f"interrupted {where}")
                return
            if cause == "timeout":
                self.fail(f"cancelled after {self.timeout:g} s {where} (--timeout / CLINIC_SQL_TIMEOUT; 0 for no limit)")
                return
            if isinstance(error, duckdb.Error):
                if _is_read_only_error(error):
                    said = _first_line(error).replace('""', '"')  # DuckDB doubles a quoted name's quotes here
                    self.fail(f"read-only: {said} {where}" + _read_only_advice(error))
                else:
                    self.fail(f"SQL error: {_whole(error, where)}" + _tables_hint(error))
                return
            if isinstance(error, ValueError | OverflowError):  # a value Python cannot hold
                self.fail(f"SQL error: {_first_line(error)} {where}")
                return
            if error is not None:
                raise error

    def _execute(self, statement, where: str) -> None:
        self.con.execute(statement.query)
        self._print_result(statement.type, where)

    def _bounded(self, work) -> tuple[str | None, BaseException | None]:
        """Run one statement in a worker thread while this (the main) thread waits, so Ctrl-C
        and the timeout reach DuckDB at once (con.interrupt) whatever it is doing, and the
        statement has always ended when this returns. Returns what stopped it ("interrupt",
        "timeout" or None) and the error it raised."""
        outcome: dict[str, object] = {}

        def target() -> None:
            try:
                work()
            except BaseException as error:  # handed to the main thread
                outcome["error"] = error

        def on_sigint(_signum, _frame) -> None:  # no exception: the wait below must go on
            outcome.setdefault("cause", "interrupt")
            self._stop_statement()

        self.cancel.clear()
        previous = _install_sigint(on_sigint)
        try:
            worker = threading.Thread(target=target, name="clinic-sql-statement", daemon=True)
            worker.start()
            deadline = time.monotonic() + self.timeout if self.timeout else None
            while worker.is_alive():
                if deadline is not None and "cause" not in outcome and time.monotonic() >= deadline:
                    outcome["cause"] = "timeout"
                    self._stop_statement()
                worker.join(0.05)
        finally:
            _install_sigint(previous)
        cause = outcome.get("cause")
        return cause, None if cause else outcome.get("error")

    def _stop_statement(self) -> None:
        self.cancel.set()
        self.con.interrupt()

    def _print_result(self, kind: duckdb.StatementType, where: str) -> None:
        description = self.con.description
        if kind not in RESULT_TYPES or not description:
            return
        columns = [d[0] for d in description]
        numeric = [str(d[1]).split("(")[0] in NUMERIC_TYPES for d in description]
        if columns == ["Success"] and kind != ST.SELECT:  # CHECKPOINT and the like answer nothing
            return
        cls = _ExplainWriter if kind == ST.EXPLAIN and self.fmt == "table" else WRITERS[self.fmt]
        writer = cls(self.out, columns, numeric, self.cancel.is_set)
        writer.begin()
        shown = total = 0
        limit = self.max_rows
        while batch := self.con.fetchmany(BATCH):
            if self.cancel.is_set():
                raise _Cancelled
            total += len(batch)
            take = batch if limit is None else batch[:max(0, limit - shown)]
            if take:
                writer.rows(take)
                shown += len(take)
        writer.end(shown, total)
        self.out.flush()
        if shown < total and self.fmt != "table":
            print(f"clinic sql: {total - shown} of {total} rows left out {where}; "
                  "use --max-rows 0 or .maxrows 0 for all", file=self.err, flush=True)

    # -- dot commands --
    def dot(self, line: str, lineno: int) -> None:
        try:
            words = shlex.split(line)
        except ValueError:
            words = line.split()
        command, params = words[0].lower(), words[1:]
        if command in (".quit", ".exit", ".q"):
            self.stopped = True
        elif command == ".help":
            print(HELP, file=self.out)
        elif command == ".tables":
            for schema, name, _kind, _comment in self.relations():
                print(name if schema == "marts" else f"{schema}.{name}", file=self.out)
        elif command == ".schema":
            self._schema(params[0] if params else None, lineno)
        elif command == ".mode":
            if len(params) == 1 and params[0].lower() in FORMATS:
                self.fmt = params[0].lower()
            else:
                self.fail(f"line {lineno}: .mode takes one of {', '.join(FORMATS)}")
        elif command == ".maxrows":
            if len(params) == 1 and params[0].isdigit():
                self.max_rows = int(params[0]) or None
            else:
                self.fail(f"line {lineno}: .maxrows takes a number of rows (0: all)")
        elif command in FILE_DOT_COMMANDS:
            self.fail(f"read-only: {command} is not available: clinic sql reads and writes no other file "
                      f"(line {lineno})")
        else:
            self.fail(f"line {lineno}: unknown command {command}; .help lists the commands")
        self.out.flush()

    def relations(self) -> list[tuple[str, str, str, str | None]]:
        """(schema, name, TABLE or VIEW, comment) of the snapshot's own relations."""
        return self.con.execute("""
            SELECT schema_name, table_name, 'TABLE', comment FROM duckdb_tables()
            WHERE database_name = current_database() AND NOT internal AND NOT temporary
            UNION ALL
            SELECT schema_name, view_name, 'VIEW', comment FROM duckdb_views()
            WHERE database_name = current_database() AND NOT internal AND NOT temporary
            ORDER BY schema_name <> 'marts', schema_name, 2""").fetchall()

    def _schema(self, wanted: str | None, lineno: int) -> None:
        relations = self.relations()
        if wanted is not None:
            key = wanted.lower()
            relations = [r for r in relations if key in (r[1].lower(), f"{r[0]}.{r[1]}".lower())]
            if not relations:
                self.fail(f"line {lineno}: no table or view {wanted} in the snapshot; .tables lists them")
                return
        columns = self.con.execute("""
            SELECT schema_name, table_name, column_name, data_type, comment FROM duckdb_columns()
            WHERE database_name = current_database() ORDER BY column_index""").fetchall()
        for schema, name, kind, comment in relations:
            if comment:
                print(f"-- {_one_line(comment)}", file=self.out)
            print(f"CREATE {kind} {schema}.{name} (", file=self.out)
            mine = [c for c in columns if c[0] == schema and c[1] == name]
            for i, (_s, _t, column, data_type, column_comment) in enumerate(mine):
                comma = "," if i < len(mine) - 1 else ""
                note = f"  -- {_one_line(column_comment)}" if column_comment else ""
                print(f"    {column} {data_type}{comma}{note}", file=self.out)
            print(");", file=self.out)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# ---- interactive ---------------------------------------------------------------------------------

def banner(shell: Shell, snapshot: Path) -> str:
    names = [n if s == "marts" else f"{s}.{n}" for s, n, _k, _c in shell.relations()]
    return (f"clinic sql on {snapshot} (read-only: nothing can be written, no other file read).\n"
            f"Tables: {', '.join(names) or '(none)'}.\n"
            "End statements with ; and Enter. .help for commands, Ctrl-D to quit.")


def interactive(shell: Shell, input_fn=input) -> int:
    """The prompt loop: Ctrl-C clears the pending statement, Ctrl-D (EOF) runs what is left and exits
    with status 1 if any statement failed in the session, like the end of a piped script."""
    lineno = 0
    shell.interactive = True
    while True:
        try:
            line = input_fn(CONTINUATION if shell.pending else PROMPT)
        except KeyboardInterrupt:
            shell.clear()
            print("^C", file=shell.out, flush=True)
            continue
        except EOFError:
            print(file=shell.out, flush=True)
            return shell.finish()
        lineno += 1
        if not shell.pending and line.strip().rstrip(";").lower() in ("quit", "exit"):
            return shell.status()
        if not shell.feed(line, lineno):
            return shell.status()


def setup_history(path: Path) -> None:
    """Line editing and history through readline; an unreadable or unwritable history is no error."""
    try:
        import readline
    except ImportError:
        return
    readline.set_history_length(2000)
    try:
        readline.read_history_file(path)
    except OSError:
        pass


def save_history(path: Path) -> bool:
    """Write the readline history; False (and nothing raised) when the file cannot be written."""
    try:
        import readline

        readline.write_history_file(path)
    except (ImportError, OSError):
        return False
    return True


# ---- command line --------------------------------------------------------------------------------

DESCRIPTION = "Query the published snapshot (clinic.duckdb, schema marts) read-only."
EPILOG = f"""\
Input: a one-shot QUERY argument (stops at the first error), a script piped to stdin, or a
prompt when stdin is a terminal. Statements end with ; (the last may omit it); each result is
printed in turn. Piped and interactive input goes on after an error.

{HELP}

Exit status: 0 when every statement succeeded, 1 when any failed, 2 when the snapshot cannot be
opened."""


def _max_rows(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 (all rows) or more")
    return value


def add_parser(subparsers) -> argparse.ArgumentParser:
    """The `clinic sql` subcommand's parser (the caller sets its func)."""
    parser = subparsers.add_parser("sql", help="query the published snapshot read-only",
                                   description=DESCRIPTION, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("query", nargs="?",
                        help="SQL statements or a dot command (default: read stdin; a prompt on a terminal)")
    add_marts_option(parser)
    parser.add_argument("--format", choices=FORMATS, default="table",
                        help="output format; json prints one array of objects per statement "
                             "(default: table)")
    parser.add_argument("--max-rows", type=_max_rows, metavar="N",
                        help=f"print at most N rows per result, 0 for all (default: {TERMINAL_MAX_ROWS} "
                             "on a terminal, all rows when stdout is piped)")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="cancel a statement that runs longer (default: $CLINIC_SQL_TIMEOUT or 0, no limit)")
    return parser


def _timeout(given: float | None) -> float:
    value = float(setting_value("sql_timeout", given))
    if value < 0:
        raise ValueError("the statement timeout must be 0 (no limit) or more seconds")
    return value


def run(args: argparse.Namespace, stdin: IO[str] | None = None, out: IO[str] | None = None,
        err: IO[str] | None = None) -> int:
    """`clinic sql` itself: open the snapshot, then run the query, the piped script or the prompt."""
    stdin, out, err = stdin or sys.stdin, out or sys.stdout, err or sys.stderr
    snapshot = Path(setting_value("marts_dir", args.marts)) / "clinic.duckdb"
    try:
        con = open_snapshot(snapshot)
    except SnapshotError as error:
        print(f"clinic sql: {error}", file=err)
        return 2
    max_rows = args.max_rows
    if max_rows is None:
        max_rows = TERMINAL_MAX_ROWS if out.isatty() else 0
    try:
        timeout = _timeout(getattr(args, "timeout", None))
    except (ValueError, ConfigError) as error:
        con.close()
        print(f"clinic sql: {error} (--timeout or CLINIC_SQL_TIMEOUT)", file=err)
        return 2
    shell = Shell(con, out=out, err=err, fmt=args.format, max_rows=max_rows or None,
                  bail=args.query is not None, timeout=timeout)
    try:
        if args.query is not None:
            return shell.run_lines(args.query.splitlines())
        if stdin.isatty():
            history = HISTORY_FILE.expanduser()
            setup_history(history)
            print(banner(shell, snapshot), file=out, flush=True)
            try:
                return interactive(shell)
            finally:
                save_history(history)
        return shell.run_lines(stdin)
    except KeyboardInterrupt:
        print("clinic sql: interrupted", file=err)
        return 130
    except BrokenPipeError:  # `clinic sql ... | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    finally:
        con.close()
