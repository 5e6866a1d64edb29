"""``biotech_ma_db.sync.repositories`` is what the generator writes from the repositories today.

When a repository method is added or its signature changes, this fails until
``python tools/generate_sync_protocols.py`` has been run (and the result committed).
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType

from biotech_ma_db import repositories
from biotech_ma_db.sync import SyncUnitOfWork
from biotech_ma_db.sync import repositories as protocols
from biotech_ma_db.sync._unit_of_work import RepositoryAttribute, coroutine_methods

GENERATOR = Path(__file__).resolve().parents[2] / "tools" / "generate_sync_protocols.py"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_sync_protocols", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while executing
    spec.loader.exec_module(module)
    return module


class TestGeneratedProtocols:
    """The Protocols match the repositories, method for method."""

    def test_the_module_is_up_to_date(self) -> None:
        """Regenerating gives the committed file, byte for byte."""
        generator = _generator()
        assert Path(protocols.__file__) == generator.TARGET
        assert generator.generate() == generator.TARGET.read_text(encoding="utf-8"), (
            "run: python tools/generate_sync_protocols.py"
        )

    def test_every_coroutine_method_has_its_blocking_twin(self) -> None:
        """Each attribute's Protocol names exactly the repository's coroutine methods."""
        for name, attribute in vars(SyncUnitOfWork).items():
            if not isinstance(attribute, RepositoryAttribute):
                continue
            protocol = getattr(protocols, f"Sync{attribute.repository.__name__}")
            declared = {
                member
                for member, value in inspect.getmembers(protocol)
                if not member.startswith("_") and inspect.isfunction(value)
            }
            assert declared == coroutine_methods(attribute.repository), name

    def test_every_repository_is_an_attribute(self) -> None:
        """No exported repository is left without a place on the unit of work."""
        wrapped = {
            attribute.repository
            for attribute in vars(SyncUnitOfWork).values()
            if isinstance(attribute, RepositoryAttribute)
        }
        exported = {
            value
            for value in map(repositories.__dict__.get, repositories.__all__)
            if isinstance(value, type)
            and issubclass(value, repositories.ReadRepository)
            and value not in {repositories.ReadRepository, repositories.Repository}
        }
        assert wrapped == exported
