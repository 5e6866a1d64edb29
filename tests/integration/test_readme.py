"""Every ```python block of the README runs, as written, against a real PostgreSQL."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from biotech_ma_db import Database, close_db

README = Path(__file__).resolve().parents[2] / "README.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _examples() -> list[str]:
    return _BLOCK.findall(README.read_text(encoding="utf-8"))


def test_readme_has_examples() -> None:
    assert len(_examples()) >= 3


@pytest.mark.parametrize("source", _examples(), ids=lambda s: s.strip().splitlines()[-1][:40])
async def test_readme_example_runs(
    source: str, fresh_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", fresh_database.engine.url.render_as_string(False))
    wrapped = "async def _example():\n" + textwrap.indent(source, "    ") + "\n    pass\n"
    namespace: dict[str, object] = {}
    # dont_inherit: run the examples as a reader's module would, not under this file's
    # `from __future__ import annotations` (FastAPI must see the handlers' real annotations).
    code = compile(wrapped, str(README), "exec", dont_inherit=True)
    exec(code, namespace)  # noqa: S102 — our own README
    try:
        await namespace["_example"]()  # type: ignore[operator]
    finally:
        await close_db()
