"""What provisioning hands back: a :class:`ProvisionReport`, or a :class:`RoleProvisioningError`."""

from __future__ import annotations

from dataclasses import dataclass, field

from biotech_ma_db.errors import DatabaseError

__all__ = ["ProvisionReport", "RoleProvisioningError"]


class RoleProvisioningError(DatabaseError):
    """Provisioning failed, or left a role with more power than it should have."""


@dataclass(frozen=True, slots=True)
class ProvisionReport:
    """What :func:`~biotech_ma_db.roles.provision_roles` did.

    Attributes:
        database: The database whose grants were applied.
        schema: The schema whose grants and default privileges were applied.
        created: Roles created by this run.
        existing: Roles that already existed (their attributes were re-applied).
        passwords_set: Roles whose password was (re)set.
        adopted: Objects whose ownership moved to ``app_owner`` (``adopt_existing``).
    """

    database: str
    schema: str
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    passwords_set: list[str] = field(default_factory=list)
    adopted: int = 0
