"""The bulk-write validator returns what the row-by-row one does, in driver form."""

from __future__ import annotations

import datetime as dt
import enum
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biotech_ma_db import sampledata
from biotech_ma_db.errors import ValidationError
from biotech_ma_db.models import Company, Signal
from biotech_ma_db.repositories.validation import check_json, json_text, rules_for
from biotech_ma_db.repositories.validation.bulk import records_by_column

SIGNAL_COLUMNS = ("company_id", "signal_type", "event_date", "severity", "title", "signal_data")
ABSENT = {"severity": "medium", "signal_data": "{}"}
_DROP = object()


def _signal_rows(count: int) -> list[dict[str, Any]]:
    spec = sampledata.DatasetSpec(companies=1, signals=count, seed=7, batch_size=count)
    rows = next(iter(sampledata.signals(spec, list(range(1, 51)))))
    return [{k: v for k, v in row.items() if k in SIGNAL_COLUMNS} for row in rows]


def _plain(value: object) -> object:
    return value.value if isinstance(value, enum.Enum) else value


def test_records_match_create() -> None:
    rules = rules_for(Signal)
    rows = _signal_rows(300)
    records = rules.driver_records(rows, SIGNAL_COLUMNS, ABSENT)
    for row, record in zip(rows, records, strict=True):
        cleaned = rules.create(row)
        expected = tuple(
            json_text(cleaned[c]) if c == "signal_data" else _plain(cleaned.get(c))
            for c in SIGNAL_COLUMNS
        )
        assert record == expected
        assert type(record[1]) is str  # a plain string, not the enum member


def test_absent_columns_take_the_given_values() -> None:
    rules = rules_for(Signal)
    row = _signal_rows(1)[0]
    del row["severity"], row["signal_data"]
    (record,) = rules.driver_records([row], SIGNAL_COLUMNS, ABSENT)
    assert (record[3], record[5]) == ("medium", "{}")


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("signal_type", "rumour", "is not one of"),
        ("signal_data", [1], "expected a mapping"),
        ("signal_data", {"x": float("nan")}, "is not JSON"),
        ("title", None, "may not be None"),
        ("id", 5, "is read-only"),
        ("colour", "red", "unknown field"),
    ],
)
def test_first_bad_value_names_row_and_field(field: str, value: object, problem: str) -> None:
    rows = _signal_rows(5)
    rows[3][field] = value
    with pytest.raises(ValidationError) as caught:
        rules_for(Signal).driver_records(rows, SIGNAL_COLUMNS, ABSENT)
    assert (caught.value.row, caught.value.field) == (3, field)
    assert problem in caught.value.problem


def test_missing_required_field() -> None:
    rows = _signal_rows(2)
    del rows[1]["title"]
    with pytest.raises(ValidationError) as caught:
        rules_for(Signal).driver_records(rows, SIGNAL_COLUMNS, ABSENT)
    assert (caught.value.row, caught.value.field, caught.value.problem) == (
        1,
        "title",
        "is required",
    )


def test_company_numbers_come_out_as_decimal() -> None:
    (record,) = rules_for(Company).driver_records(
        [{"ticker": "ABC", "name": "A", "market_cap_usd": 1.5}],
        ("ticker", "name", "market_cap_usd"),
        {},
    )
    assert record == ("ABC", "A", Decimal("1.5"))


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(document=st.dictionaries(st.text(), JSON_VALUES, max_size=5))
def test_json_text_is_compact_json(document: dict[str, object]) -> None:
    strings = _strings(document)
    refusable = any("\x00" in s or any(0xD800 <= ord(c) <= 0xDFFF for c in s) for s in strings)
    try:
        text = json_text(document)
    except Exception:  # noqa: BLE001 — only NULs and lone surrogates may be refused
        assert refusable
        return
    assert not refusable
    assert text == json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def test_json_text_refuses_cycles_and_sets() -> None:
    cyclic: dict[str, object] = {}
    cyclic["self"] = cyclic
    for bad in (cyclic, {"s": {1}}, {"d": Decimal(1)}):
        with pytest.raises(ValidationError, match=r"nested too deeply|is not JSON"):
            check_json("signal_data", bad)


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


ODD_VALUES = st.sampled_from(
    [
        None,
        0,
        -1,
        2**40,
        True,
        1.5,
        float("inf"),
        Decimal("NaN"),
        Decimal("12345678.9"),
        Decimal("-100.01"),
        "",
        "x" * 10_001,
        "nul\x00",
        "\ud800",
        "ümlaut",
        "medium",
        "rumour",
        dt.datetime(2024, 1, 1),  # noqa: DTZ001 — naive on purpose: made UTC
        dt.date(2024, 1, 1),
        {"k": [1, "v"]},
        {"k": {1, 2}},
        [1],
    ]
)


@settings(max_examples=400, deadline=None)
@given(
    changes=st.lists(
        st.tuples(
            st.integers(0, 7),
            st.sampled_from([*SIGNAL_COLUMNS, "ma_impact_score", "description", "id", "x"]),
            ODD_VALUES | st.just(_DROP),
        ),
        max_size=3,
    )
)
def test_column_checks_agree_with_row_checks(changes: list[tuple[int, str, object]]) -> None:
    """Checked a column at a time or a row at a time: the same records, or the same error."""
    rules = rules_for(Signal)
    rows = _signal_rows(8)
    for index, name, value in changes:
        if value is _DROP:
            rows[index].pop(name, None)
        else:
            rows[index][name] = value
    outcomes = []
    for check in (rules.driver_records, rules._records_by_row):
        try:
            outcomes.append(check(rows, SIGNAL_COLUMNS, ABSENT))
        except ValidationError as exc:
            outcomes.append((exc.row, exc.field, exc.problem))
    assert outcomes[0] == outcomes[1]


COMPANY_COLUMNS = (
    "ticker",
    "name",
    "market_cap_usd",
    "cash_position_usd",
    "employee_count",
    "therapeutic_areas",
)

ODD_COMPANY_VALUES = st.sampled_from(
    [
        None,
        1.25,
        7,
        Decimal("Infinity"),
        Decimal("-Infinity"),
        Decimal("sNaN"),
        Decimal("-0.01"),
        Decimal("1E+30"),
        Decimal("999999999999999999.995"),
        Decimal("0.001"),
        "12",
        [],
        ["oncology", "rare_disease"],
        ("oncology",),
        {"oncology"},
        ["oncology", None],
        ["nul\x00"],
        ["\ud800"],
        ["x" * 10_001],
        [1],
        [["nested"]],
        ["b"] * 10_001,
    ]
)


def _company_rows(count: int) -> list[dict[str, Any]]:
    spec = sampledata.DatasetSpec(companies=count, signals=0, seed=11, batch_size=count)
    return [
        {k: v for k, v in row.items() if k in COMPANY_COLUMNS} for row in sampledata.companies(spec)
    ]


@settings(max_examples=400, deadline=None)
@given(
    changes=st.lists(
        st.tuples(
            st.integers(0, 5),
            st.sampled_from(COMPANY_COLUMNS[2:]),
            ODD_COMPANY_VALUES | st.just(_DROP),
        ),
        max_size=3,
    )
)
def test_company_column_checks_agree_with_row_checks(
    changes: list[tuple[int, str, object]],
) -> None:
    """Money, counts and text arrays: column at a time and row at a time agree."""
    rules = rules_for(Company)
    rows = _company_rows(6)
    for index, name, value in changes:
        if value is _DROP:
            rows[index].pop(name, None)
        else:
            rows[index][name] = value
    outcomes = []
    for check in (rules.driver_records, rules._records_by_row):
        try:
            outcomes.append(check(rows, COMPANY_COLUMNS, {}))
        except ValidationError as exc:
            outcomes.append((exc.row, exc.field, exc.problem))
    assert outcomes[0] == outcomes[1]


def test_a_batch_of_json_with_one_bad_document_names_it() -> None:
    rows = _signal_rows(6)
    rows[4]["signal_data"] = {"note": "nul \x00 inside"}
    with pytest.raises(ValidationError) as caught:
        rules_for(Signal).driver_records(rows, SIGNAL_COLUMNS, ABSENT)
    assert (caught.value.row, caught.value.field) == (4, "signal_data")
    assert "NUL" in caught.value.problem


def test_clean_batches_take_the_column_path() -> None:
    """Decimals, text arrays and JSON documents are settled without going row by row."""
    companies = _company_rows(50)
    assert {type(row["market_cap_usd"]) for row in companies} == {Decimal}
    assert {type(row["therapeutic_areas"]) for row in companies} == {list}
    spec = sampledata.DatasetSpec(companies=1, signals=50, seed=7, batch_size=50)
    signals = next(iter(sampledata.signals(spec, list(range(1, 51)))))
    columns = (*SIGNAL_COLUMNS, "ma_impact_score")
    signals = [{k: v for k, v in row.items() if k in columns} for row in signals]
    assert Decimal in {type(row.get("ma_impact_score")) for row in signals}
    for model, rows, names, absent in (
        (Company, companies, COMPANY_COLUMNS, {}),
        (Signal, signals, columns, ABSENT),
    ):
        rules = rules_for(model)
        records = records_by_column(rules._bulk_writable, rules.required, rows, names, absent)
        assert records == rules._records_by_row(rows, names, absent)
