"""T-SEC-5: sort and filter names from outside are whitelisted; search terms stay parameters.

A property test feeds generated strings (plus known injection payloads and the names of
secret or internal attributes) to every repository's sort and filter whitelist and to the
company search.  Pure Python, no SQL per example: what matters is which names are
accepted and what SQL text would be compiled.  A few real queries at the end show the
escaping on the server.
"""

from __future__ import annotations

import itertools
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import elements

from biotech_ma_db import (
    Database,
    InvalidInputError,
    InvalidQueryError,
    ValidationError,
    repositories,
)
from biotech_ma_db.repositories import CompanyRepository
from biotech_ma_db.repositories.base import ReadRepository, Repository
from biotech_ma_db.repositories.query import resolve_filters, resolve_order
from biotech_ma_db.repositories.validation import rules_for

from .conftest import Figure

REPOSITORIES: list[type[ReadRepository[Any]]] = sorted(
    (
        value
        for value in vars(repositories).values()
        if isinstance(value, type)
        and issubclass(value, ReadRepository)
        and value not in {Repository, ReadRepository}
        and getattr(value, "model", None) is not None
    ),
    key=lambda cls: cls.__name__,
)

DANGEROUS = [
    "key_hash",
    "api_key_hash",
    "secret",
    "secret_key_version",
    "metadata",
    "__table__",
    "__class__",
    "__dict__",
    "__mapper__",
    "_sa_instance_state",
    "registry",
    "preferences",
    "payload",
    "id; DROP TABLE companies",
    "name desc",
    "name, (SELECT key_hash FROM api_keys)",
    "name) --",
    "(SELECT 1)",
    "1=1",
    "' OR '1'='1",
    "Name",
    "NAME",
    " name",
    "name ",
    "na\x00me",
    "ｎａｍｅ",  # noqa: RUF001 — fullwidth look-alike on purpose
    "-key_hash",
    "+secret",
    "--name",
    "name__like",
    "name__op",
    "id__eq__gt",
]

WHITELISTED = sorted({name for repo in REPOSITORIES for name in (*repo.sortable, *repo.filterable)})
_AFFIXES = ["", "-", "+", "--", " "]
_SUFFIXES = ["", "__eq", "__in", "__lt", "__gte", "__like", "__", "__eq__in", " desc", ";", "'"]

PAYLOADS = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda prefix, name, suffix: prefix + name + suffix,
        st.sampled_from(_AFFIXES),
        st.sampled_from(WHITELISTED + DANGEROUS),
        st.sampled_from(_SUFFIXES),
    ),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=24),
)

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


class _Tally:
    def __init__(self) -> None:
        self.inputs = 0
        self.checks = 0
        self.accepted_outside = 0
        self.unexpected: list[str] = []
        self.text_clauses = 0


TALLY = _Tally()


@contextmanager
def _no_text_clauses() -> Iterator[list[str]]:
    """Record every ``text()``/``literal_column()`` built while the block runs."""
    created: list[str] = []
    text_init = elements.TextClause.__init__
    column_init = elements.ColumnClause.__init__

    def spy_text(self: Any, text: str, *args: Any, **kwargs: Any) -> None:
        created.append(text)
        text_init(self, text, *args, **kwargs)

    def spy_column(self: Any, text: str, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("is_literal"):
            created.append(text)
        column_init(self, text, *args, **kwargs)

    elements.TextClause.__init__ = spy_text  # type: ignore[method-assign]
    elements.ColumnClause.__init__ = spy_column  # type: ignore[method-assign]
    try:
        yield created
    finally:
        elements.TextClause.__init__ = text_init  # type: ignore[method-assign]
        elements.ColumnClause.__init__ = column_init  # type: ignore[method-assign]


def _sort_name(spec: str) -> str:
    return spec[1:] if spec[:1] in {"-", "+"} else spec


def _check_sort(repo: type[ReadRepository[Any]], spec: str) -> None:
    TALLY.checks += 1
    allowed = _sort_name(spec) in repo.sortable
    try:
        keys = resolve_order(spec, repo.sortable, repo.model.id)
    except InvalidQueryError:
        if allowed:
            TALLY.unexpected.append(f"{repo.__name__}: refused whitelisted sort {spec!r}")
        return
    if not allowed:
        TALLY.accepted_outside += 1
        return
    # Accepted: the ORDER BY is built from the whitelisted column objects only.
    whitelisted = {repo.sortable[_sort_name(spec)], repo.model.id}
    if any(key.column not in whitelisted for key in keys):
        TALLY.unexpected.append(f"{repo.__name__}: sort {spec!r} reached another column")


def _check_filter(repo: type[ReadRepository[Any]], name: str) -> None:
    TALLY.checks += 1
    field, _, op = name.partition("__")
    allowed = field in repo.filterable and (op or "eq") in {
        "eq",
        "ne",
        "lt",
        "lte",
        "gt",
        "gte",
        "in",
    }
    value: object = [] if op == "in" else None
    try:
        criteria = resolve_filters({name: value}, repo.filterable, rules_for(repo.model).value)  # type: ignore[arg-type]
    except InvalidQueryError:
        if allowed:
            TALLY.unexpected.append(f"{repo.__name__}: refused whitelisted filter {name!r}")
        return
    except ValidationError:
        if not allowed:
            TALLY.accepted_outside += 1  # the value was looked at: the name got through
        return
    if not allowed:
        TALLY.accepted_outside += 1
        return
    column = repo.filterable[field].expression
    if any(column not in criterion.get_children() for criterion in criteria):
        TALLY.unexpected.append(f"{repo.__name__}: filter {name!r} reached another column")


class TestWhitelists:
    """Only whitelisted names are accepted; nothing else reaches SQL text."""

    @settings(
        max_examples=5_000,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        database=None,
    )
    @given(PAYLOADS)
    def test_sort_and_filter_names(self, payload: str) -> None:
        TALLY.inputs += 1
        with _no_text_clauses() as created:
            for repo in REPOSITORIES:
                try:
                    _check_sort(repo, payload)
                    _check_filter(repo, payload)
                except Exception as exc:  # noqa: BLE001 — a 500 in the API: recorded
                    TALLY.unexpected.append(f"{repo.__name__}: {type(exc).__name__}")
        TALLY.text_clauses += len(created)
        assert TALLY.accepted_outside == 0
        assert TALLY.unexpected == []
        assert created == []

    def test_secret_and_internal_names_are_refused_everywhere(self, figure: Figure) -> None:
        refused = 0
        for repo, name in itertools.product(REPOSITORIES, DANGEROUS):
            with pytest.raises(InvalidQueryError):
                resolve_order(name, repo.sortable, repo.model.id)
            with pytest.raises(InvalidQueryError):
                resolve_filters({name: None}, repo.filterable, lambda f, v: v)
            refused += 2
        assert all(
            not {"key_hash", "api_key_hash", "secret"} & (set(repo.sortable) | set(repo.filterable))
            for repo in REPOSITORIES
        )
        figure(
            f"{len(DANGEROUS)} secret/internal/injection names x {len(REPOSITORIES)} "
            f"repositories: {refused}/{refused} refused with InvalidQueryError; property run: "
            f"{TALLY.inputs:,} generated inputs, {TALLY.checks:,} whitelist checks, "
            f"{TALLY.accepted_outside} accepted outside the whitelist, "
            f"{len(TALLY.unexpected)} unexpected errors, {TALLY.text_clauses} text() built"
        )


def _run_now(coro: Coroutine[Any, Any, Any]) -> Any:
    """Drive a coroutine that never suspends (its I/O is stubbed out)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise AssertionError("the coroutine suspended")


class _CapturingCompanies(CompanyRepository):
    """``CompanyRepository`` whose statements are captured instead of executed."""

    def __init__(self) -> None:
        super().__init__(AsyncSession())
        self.statements: list[Any] = []

    async def _scalars(self, stmt: Any) -> list[Any]:
        self.statements.append(stmt)
        return []


def _escaped(term: str) -> str:
    return term.replace("/", "//").replace("%", "/%").replace("_", "/_")


_SEARCH = {"inputs": 0, "refused": 0}
_BASELINE: dict[str, str] = {}


class TestSearch:
    """A search term is a bound LIKE parameter with ``%``/``_`` escaped, never SQL text."""

    @settings(max_examples=400, deadline=None, database=None)
    @given(st.one_of(st.text(max_size=60), st.sampled_from([*DANGEROUS, "%", "_", "/", "%_/"])))
    def test_term_never_changes_the_sql(self, term: str) -> None:
        repo = _CapturingCompanies()
        if "baseline" not in _BASELINE:
            _run_now(repo.search(query="baseline"))
            _BASELINE["baseline"] = str(repo.statements[-1].compile(dialect=_DIALECT))
        baseline = _BASELINE["baseline"]
        _SEARCH["inputs"] += 1
        try:
            _run_now(repo.search(query=term))
        except InvalidInputError:
            _SEARCH["refused"] += 1
            assert "\x00" in term or len(term) > 200
            return
        compiled = repo.statements[-1].compile(dialect=_DIALECT)
        assert str(compiled) == baseline
        likes = [v for v in compiled.params.values() if isinstance(v, str)]
        assert _escaped(term) in likes

    async def test_escaping_on_the_server(self, rw_db: Database, figure: Figure) -> None:
        names = ["100% Organic Bio", "A_B Therapeutics", "AxB Therapeutics", "Slash/Pharma"]
        async with rw_db.unit_of_work() as uow:
            for index, name in enumerate(names):
                await uow.companies.create(ticker=f"ESC{index}", name=name)
            found = {
                term: sorted(c.name for c in await uow.companies.search(query=term))
                for term in ("%", "_", "A_B", "/", "%'; DROP TABLE companies; --")
            }
            with pytest.raises(InvalidQueryError):
                await uow.companies.list(order_by="-key_hash")
            with pytest.raises(InvalidQueryError):
                await uow.clients.list(order_by="api_key_hash")
            with pytest.raises(InvalidQueryError):
                await uow.webhooks.count(filters={"secret": "x"})
            await uow.rollback()
        assert found == {
            "%": ["100% Organic Bio"],
            "_": ["A_B Therapeutics"],
            "A_B": ["A_B Therapeutics"],
            "/": ["Slash/Pharma"],
            "%'; DROP TABLE companies; --": [],
        }
        figure(
            f"search: {_SEARCH['inputs']:,} generated terms, SQL text identical to the "
            f"baseline for all, {_SEARCH['refused']} refused (NUL/over-length); on the "
            "server '%' and '_' match only themselves"
        )
