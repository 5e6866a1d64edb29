"""The public API: ``__all__`` is sorted, complete and importable."""

from __future__ import annotations

import biotech_ma_db


class TestExports:
    """``biotech_ma_db.__all__`` is the documented public surface."""

    def test_all_is_sorted(self) -> None:
        assert list(biotech_ma_db.__all__) == sorted(biotech_ma_db.__all__)

    def test_every_name_resolves(self) -> None:
        for name in biotech_ma_db.__all__:
            assert getattr(biotech_ma_db, name) is not None

    def test_every_public_attribute_is_listed(self) -> None:
        public = {
            name
            for name, value in vars(biotech_ma_db).items()
            if not name.startswith("_") and not isinstance(value, type(biotech_ma_db))
        }
        assert public <= set(biotech_ma_db.__all__)
