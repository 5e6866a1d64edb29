"""Safe-by-default migration rules, checked on the offline SQL of every revision.

``alembic upgrade head --sql`` is what a reviewer reads; these rules read the same text,
statement by statement, knowing for each one whether it runs inside the migration
transaction and which ``lock_timeout`` is in force:

``index-concurrently``
    An index on an existing table is built with ``CREATE INDEX CONCURRENTLY`` outside the
    transaction (``op.get_context().autocommit_block()``): a plain ``CREATE INDEX`` blocks
    every write to the table for the whole build.  The same goes for ``ADD UNIQUE`` /
    ``PRIMARY KEY`` without ``USING INDEX`` and a plain ``REINDEX``.  Tables created by the
    same revision are exempt, as is ``CREATE INDEX ... ON ONLY parent`` (a partitioned
    table's parent index, which builds nothing).
``not-null``
    A new ``NOT NULL`` column on an existing table has a default; ``SET NOT NULL`` on an
    existing table comes after a batched backfill of that column run outside the
    transaction (an ``UPDATE`` with ``LIMIT``, or a ``DO`` block that loops).
``table-rewrite``
    A statement that rewrites an existing table (a column type change, a column added with
    a volatile default, a stored generated or identity column, ``SET LOGGED``,
    ``VACUUM FULL``, ``CLUSTER``) needs a ``# safe-rewrite: table.column <why>`` comment in
    the revision's source (``table`` alone for the table-wide ones).
``lock-timeout``
    Every statement of every revision runs with a non-zero ``lock_timeout``, so DDL gives up
    instead of queueing the application behind it.  ``env.py`` sets it for the session
    (online and in the offline SQL); a revision must not clear or lower it to zero.

What a ``DO`` block or function builds with ``EXECUTE`` is not visible here, nor is data
volume: the rules are a floor for review, not a proof.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory

from biotech_ma_db import migrations

__all__ = [
    "RULES",
    "RevisionSql",
    "Statement",
    "Violation",
    "check",
    "offline_sql",
    "parse_script",
    "revision_sources",
    "split_statements",
]

RULES = ("index-concurrently", "not-null", "table-rewrite", "lock-timeout")

_MARKER = re.compile(r"^-- Running (?:upgrade|downgrade) (\S*) -> (\S+)\s*$", re.MULTILINE)
_NAME = r'(?:"[^"]+"|[A-Za-z_][\w$]*)(?:\.(?:"[^"]+"|[A-Za-z_][\w$]*))?'
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_]\w*)?\$")
_UNITS_MS = {"": 1, "us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
_VOLATILE = re.compile(
    r"\b(random|clock_timestamp|timeofday|gen_random_uuid|uuid_generate_v\w*|nextval)\s*\(",
    re.IGNORECASE,
)


def offline_sql(script_location: Path | None = None, revision: str = "head") -> str:
    """``alembic upgrade <revision> --sql`` for the project's scripts (or a copy of them)."""
    config = migrations.alembic_config()
    if script_location is not None:
        config.set_main_option("script_location", str(script_location))
    buffer = StringIO()
    config.output_buffer = buffer
    command.upgrade(config, revision, sql=True)
    return buffer.getvalue()


def revision_sources(script_location: Path | None = None) -> dict[str, str]:
    """Each revision id's Python source, where ``# safe-rewrite:`` comments live."""
    config = migrations.alembic_config()
    if script_location is not None:
        config.set_main_option("script_location", str(script_location))
    return {
        script.revision: Path(str(script.path)).read_text(encoding="utf-8")
        for script in ScriptDirectory.from_config(config).walk_revisions()
    }


def _skip_quoted(sql: str, start: int) -> int:
    """The index just past the quoted run (string, identifier, comment) at ``start``."""
    char = sql[start]
    if char in "'\"":
        end = start + 1
        while True:
            end = sql.find(char, end)
            if end == -1:
                return len(sql)
            if sql.startswith(char * 2, end):  # '' / "" escape
                end += 2
                continue
            return end + 1
    if sql.startswith("--", start):
        end = sql.find("\n", start)
        return len(sql) if end == -1 else end
    if sql.startswith("/*", start):
        depth, end = 0, start
        while end < len(sql):
            if sql.startswith("/*", end):
                depth, end = depth + 1, end + 2
            elif sql.startswith("*/", end):
                depth, end = depth - 1, end + 2
                if depth == 0:
                    return end
            else:
                end += 1
        return len(sql)
    tag = _DOLLAR_TAG.match(sql, start)
    if tag is not None and (start == 0 or not (sql[start - 1].isalnum() or sql[start - 1] == "_")):
        end = sql.find(tag.group(0), tag.end())
        return len(sql) if end == -1 else end + len(tag.group(0))
    return start + 1


def split_statements(sql: str) -> list[str]:
    """``sql`` cut at each top-level ``;`` (not inside strings, comments or ``$$`` bodies)."""
    pieces: list[str] = []
    begin = index = 0
    while index < len(sql):
        char = sql[index]
        if char == ";":
            pieces.append(sql[begin:index])
            begin = index = index + 1
        elif char in "'\"-/$":
            index = _skip_quoted(sql, index)
        else:
            index += 1
    pieces.append(sql[begin:])
    return [piece for piece in pieces if piece.strip()]


def _masked(sql: str) -> str:
    """Comments removed, literals and ``$$`` bodies blanked, whitespace collapsed."""
    out: list[str] = []
    index = 0
    while index < len(sql):
        char = sql[index]
        if char in "'-/$":
            end = _skip_quoted(sql, index)
            if end > index + 1:
                chunk = sql[index:end]
                if chunk.startswith("'"):
                    out.append("'?'")
                elif chunk.startswith("$"):
                    out.append("$$?$$")
                else:
                    out.append(" ")
                index = end
                continue
        out.append(char)
        index += 1
    return " ".join("".join(out).split())


def _name(raw: str) -> str:
    last = raw.rsplit(".", 1)[-1]
    return last[1:-1] if last.startswith('"') else last.lower()


def _milliseconds(value: str) -> int:
    """A ``lock_timeout`` value (``'3s'``, ``3000``, ``DEFAULT``) in milliseconds."""
    cleaned = value.strip().strip("'\"").strip().lower()
    if cleaned in {"default", ""}:
        return 0
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-z]*)", cleaned)
    if match is None or match.group(2) not in _UNITS_MS:
        return 0
    return int(float(match.group(1)) * _UNITS_MS[match.group(2)])


@dataclass(frozen=True)
class Statement:
    """One statement of the offline SQL, with the state it runs in.

    Attributes:
        sql: The statement as Alembic wrote it (comments before it dropped).
        masked: Comments removed, literals blanked, whitespace collapsed (for matching).
        in_transaction: Between a ``BEGIN`` and its ``COMMIT``.
        lock_timeout_ms: ``lock_timeout`` in force when it runs (0: none).
    """

    sql: str
    masked: str
    in_transaction: bool
    lock_timeout_ms: int


@dataclass
class RevisionSql:
    """The statements Alembic emitted for one revision (between its marker and the next)."""

    revision: str
    statements: list[Statement] = field(default_factory=list)


@dataclass
class _Session:
    in_transaction: bool = False
    session_ms: int = 0
    local_ms: int | None = None

    def apply(self, masked: str, sql: str) -> None:
        upper = masked.upper()
        if re.fullmatch(r"(BEGIN|START TRANSACTION)( .*)?", upper):
            self.in_transaction = True
        elif re.fullmatch(r"(COMMIT|END|ROLLBACK|ABORT)( .*)?", upper):
            self.in_transaction, self.local_ms = False, None
        elif upper in {"RESET LOCK_TIMEOUT", "RESET ALL"}:
            self.session_ms, self.local_ms = 0, None
        elif setting := re.fullmatch(
            r"SET (SESSION |LOCAL )?LOCK_TIMEOUT ?(?:=|TO) ?(.*)", sql.strip(), re.IGNORECASE
        ):
            scope = (setting.group(1) or "").strip().upper()
            self._set(_milliseconds(setting.group(2)), local=scope == "LOCAL")
        for value, local in re.findall(
            r"set_config\(\s*'lock_timeout'\s*,\s*'([^']*)'\s*,\s*(true|false)\s*\)",
            sql,
            re.IGNORECASE,
        ):
            self._set(_milliseconds(value), local=local.lower() == "true")

    def _set(self, milliseconds: int, *, local: bool) -> None:
        if local:
            if self.in_transaction:  # outside a transaction SET LOCAL does nothing
                self.local_ms = milliseconds
        else:
            self.session_ms = milliseconds
            if self.in_transaction:
                self.local_ms = None

    @property
    def lock_timeout_ms(self) -> int:
        return self.session_ms if self.local_ms is None else self.local_ms


def _strip_leading_comments(piece: str) -> tuple[list[str], str]:
    """The revision markers among ``piece``'s leading comment lines, and the rest."""
    markers: list[str] = []
    lines = piece.splitlines()
    while lines and (not lines[0].strip() or lines[0].lstrip().startswith("--")):
        marker = _MARKER.match(lines[0].strip())
        if marker is not None:
            markers.append(marker.group(2))
        lines.pop(0)
    return markers, "\n".join(lines).strip()


def parse_script(sql: str) -> list[RevisionSql]:
    """The offline SQL as one :class:`RevisionSql` per revision, in the order they run.

    Statements before the first revision marker (``SET lock_timeout``, ``BEGIN``, the
    version table) only change the session state.
    """
    session = _Session()
    revisions: list[RevisionSql] = []
    for piece in split_statements(sql):
        markers, body = _strip_leading_comments(piece)
        revisions.extend(RevisionSql(revision) for revision in markers)
        if not body:
            continue
        masked = _masked(body)
        statement = Statement(body, masked, session.in_transaction, session.lock_timeout_ms)
        session.apply(masked, body)
        if revisions:
            revisions[-1].statements.append(statement)
    return revisions


@dataclass(frozen=True)
class Violation:
    """One broken rule, naming the revision and the statement.

    Attributes:
        revision: The revision id.
        rule: One of :data:`RULES`.
        statement: The offending statement (as emitted).
        reason: What is wrong and what to write instead.
    """

    revision: str
    rule: str
    statement: str
    reason: str

    def __str__(self) -> str:
        excerpt = " ".join(self.statement.split())
        if len(excerpt) > 160:
            excerpt = excerpt[:157] + "..."
        return f"revision {self.revision}: [{self.rule}] {self.reason}\n    statement: {excerpt}"


_CREATE_TABLE = re.compile(
    rf"^CREATE (?:(?:GLOBAL |LOCAL )?(?:TEMP|TEMPORARY) |UNLOGGED )?(?:TABLE|MATERIALIZED VIEW) "
    rf"(?:IF NOT EXISTS )?({_NAME})",
    re.IGNORECASE,
)
_RENAME_TABLE = re.compile(
    rf"^ALTER TABLE (?:IF EXISTS )?(?:ONLY )?({_NAME}) RENAME TO ({_NAME})$", re.IGNORECASE
)
_CREATE_INDEX = re.compile(
    rf"^CREATE (?:UNIQUE )?INDEX (CONCURRENTLY )?(?:IF NOT EXISTS )?(?:{_NAME} )?ON (ONLY )?"
    rf"({_NAME})",
    re.IGNORECASE,
)
_REINDEX = re.compile(
    rf"^REINDEX (?:\([^)]*\) )?(?:TABLE|INDEX) (CONCURRENTLY )?({_NAME})", re.IGNORECASE
)
_ALTER_TABLE = re.compile(rf"^ALTER TABLE (?:IF EXISTS )?(?:ONLY )?({_NAME}) (.*)$", re.IGNORECASE)
_VACUUM_FULL = re.compile(rf"^VACUUM (?:\([^)]*\bFULL\b[^)]*\)|FULL)(?: \w+)*? ?({_NAME})?$", re.I)
_ADD_COLUMN = re.compile(rf"ADD (?:COLUMN )?(?:IF NOT EXISTS )?({_NAME}) (.*)$", re.I)
_CLUSTER = re.compile(rf"^CLUSTER (?:VERBOSE )?({_NAME})", re.IGNORECASE)


def _actions(rest: str) -> list[str]:
    """The comma-separated actions of an ``ALTER TABLE``, split at depth 0."""
    actions: list[str] = []
    depth, begin = 0, 0
    for index, char in enumerate(rest):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            actions.append(rest[begin:index].strip())
            begin = index + 1
    actions.append(rest[begin:].strip())
    return [action for action in actions if action]


@dataclass
class _RevisionChecker:
    revision: str
    source: str
    violations: list[Violation] = field(default_factory=list)
    created: set[str] = field(default_factory=set)
    backfilled: set[tuple[str, str]] = field(default_factory=set)

    def flag(self, rule: str, statement: Statement, reason: str) -> None:
        self.violations.append(Violation(self.revision, rule, statement.sql, reason))

    def justified(self, key: str) -> bool:
        """A ``# safe-rewrite: <key> <reason>`` comment is in the revision's source."""
        pattern = rf"#\s*safe-rewrite:\s*{re.escape(key)}\b\W*\w+"
        return re.search(pattern, self.source, re.IGNORECASE) is not None

    def run(self, statements: list[Statement]) -> list[Violation]:
        without_timeout = next((s for s in statements if s.lock_timeout_ms <= 0), None)
        if without_timeout is not None:
            self.flag(
                "lock-timeout",
                without_timeout,
                "runs with no lock_timeout, so it would queue behind a long transaction and "
                "block the application behind it; env.py sets lock_timeout for every run: "
                "do not SET lock_timeout = 0 or RESET it in a migration",
            )
        for statement in statements:
            self.statement(statement)
        return self.violations

    def statement(self, statement: Statement) -> None:
        masked = statement.masked
        if created := _CREATE_TABLE.match(masked):
            self.created.add(_name(created.group(1)))
            return
        if renamed := _RENAME_TABLE.match(masked):
            if _name(renamed.group(1)) in self.created:
                self.created.add(_name(renamed.group(2)))
            return
        if index := _CREATE_INDEX.match(masked):
            self.index(statement, index)
        elif reindex := _REINDEX.match(masked):
            if not reindex.group(1) and _name(reindex.group(2)) not in self.created:
                self.flag(
                    "index-concurrently",
                    statement,
                    "REINDEX without CONCURRENTLY blocks writes to the table for the whole "
                    "build; use REINDEX ... CONCURRENTLY inside autocommit_block()",
                )
        elif altered := _ALTER_TABLE.match(masked):
            table = _name(altered.group(1))
            if table not in self.created:
                for action in _actions(altered.group(2)):
                    self.alter_action(statement, table, action)
        elif (vacuum := _VACUUM_FULL.match(masked)) or (vacuum := _CLUSTER.match(masked)):
            table = _name(vacuum.group(1) or "")
            if table not in self.created and not self.justified(table):
                self.flag(
                    "table-rewrite",
                    statement,
                    f"rewrites {table or 'every table'} under ACCESS EXCLUSIVE; add a "
                    f"'# safe-rewrite: {table} <why it is safe>' comment to the revision",
                )
        self.note_backfill(statement)

    def index(self, statement: Statement, match: re.Match[str]) -> None:
        concurrently, only, table = match.group(1), match.group(2), _name(match.group(3))
        if table in self.created or only:
            return
        if not concurrently:
            self.flag(
                "index-concurrently",
                statement,
                f"an index on the existing table {table} must be built CONCURRENTLY: a "
                "plain CREATE INDEX blocks every write for the whole build. Use "
                "op.create_index(..., postgresql_concurrently=True) inside "
                "op.get_context().autocommit_block()",
            )
        elif statement.in_transaction:
            self.flag(
                "index-concurrently",
                statement,
                f"CREATE INDEX CONCURRENTLY on {table} runs inside the migration transaction "
                "(PostgreSQL refuses it there); wrap it in op.get_context().autocommit_block()",
            )

    def alter_action(self, statement: Statement, table: str, action: str) -> None:
        upper = action.upper()
        if re.match(r"ADD (CONSTRAINT|UNIQUE|PRIMARY KEY|CHECK|FOREIGN KEY|EXCLUDE)\b", upper):
            self.add_constraint(statement, table, upper)
        elif added := re.match(
            rf"ADD (?:COLUMN )?(?:IF NOT EXISTS )?({_NAME}) (.*)$", action, re.I
        ):
            self.add_column(statement, table, _name(added.group(1)), added.group(2).upper())
        elif altered := re.match(rf"ALTER (?:COLUMN )?({_NAME}) (.*)$", action, re.I):
            column, change = _name(altered.group(1)), altered.group(2).upper()
            if re.match(r"(SET DATA )?TYPE\b", change) and not self.justified(f"{table}.{column}"):
                self.flag(
                    "table-rewrite",
                    statement,
                    f"changing the type of {table}.{column} may rewrite the table under "
                    "ACCESS EXCLUSIVE; if it is safe (binary-coercible, small table), say why "
                    f"in a '# safe-rewrite: {table}.{column} <why>' comment in the revision",
                )
            elif change.startswith("SET NOT NULL") and (table, column) not in self.backfilled:
                self.flag(
                    "not-null",
                    statement,
                    f"SET NOT NULL on the existing column {table}.{column} without a batched "
                    "backfill first: backfill it outside the transaction (autocommit_block) "
                    "in batches (UPDATE ... LIMIT, or a DO block that loops and COMMITs)",
                )
        elif re.match(r"SET (LOGGED|UNLOGGED)$", upper) and not self.justified(table):
            self.flag(
                "table-rewrite",
                statement,
                f"SET LOGGED/UNLOGGED rewrites {table}; add a '# safe-rewrite: {table} <why>' "
                "comment to the revision",
            )

    def add_column(self, statement: Statement, table: str, column: str, definition: str) -> None:
        has_default = re.search(r"\bDEFAULT\b", definition) is not None
        rewrites = (
            (has_default and _VOLATILE.search(statement.sql) is not None)
            or re.search(r"\bGENERATED ALWAYS AS \(.*\) STORED\b", definition) is not None
            or re.search(r"\bAS IDENTITY\b|^(SMALL|BIG)?SERIAL\b", definition) is not None
        )
        if rewrites and not self.justified(f"{table}.{column}"):
            self.flag(
                "table-rewrite",
                statement,
                f"adding {table}.{column} with a volatile default, a stored generated or an "
                "identity column fills every row: a table rewrite. Add it without, backfill "
                f"in batches, or say why it is safe in '# safe-rewrite: {table}.{column} <why>'",
            )
        if re.search(r"\bNOT NULL\b", definition) and not has_default and not rewrites:
            self.flag(
                "not-null",
                statement,
                f"the new NOT NULL column {table}.{column} has no default: it fails on a table "
                "with rows. Give it a server_default, or add it nullable, backfill in batches, "
                "then SET NOT NULL",
            )

    def add_constraint(self, statement: Statement, table: str, upper: str) -> None:
        if re.search(r"\b(UNIQUE|PRIMARY KEY)\b", upper) and "USING INDEX" not in upper:
            self.flag(
                "index-concurrently",
                statement,
                f"a UNIQUE/PRIMARY KEY constraint on the existing table {table} builds its index "
                "under ACCESS EXCLUSIVE; build a unique index CONCURRENTLY first, then "
                "ADD CONSTRAINT ... USING INDEX",
            )

    def note_backfill(self, statement: Statement) -> None:
        """Record ``(table, column)`` pairs a batched, out-of-transaction UPDATE fills."""
        if statement.in_transaction:
            return
        text_ = statement.sql
        batched = re.search(r"\bLIMIT\b", text_, re.I) or re.search(r"\bLOOP\b", text_, re.I)
        if not batched:
            return
        for table, assignments in re.findall(
            rf"\bUPDATE\s+(?:ONLY\s+)?({_NAME})(?:\s+(?:AS\s+)?\w+)?\s+SET\s+(.*?)(?:\bWHERE\b|;|$)",
            text_,
            re.IGNORECASE | re.DOTALL,
        ):
            for column in re.findall(rf"({_NAME})\s*=", assignments):
                self.backfilled.add((_name(table), _name(column)))


def check(revisions: list[RevisionSql], sources: Mapping[str, str]) -> list[Violation]:
    """Every rule over every revision; empty when all are safe."""
    found: list[Violation] = []
    for revision in revisions:
        checker = _RevisionChecker(revision.revision, sources.get(revision.revision, ""))
        found.extend(checker.run(revision.statements))
    return found
