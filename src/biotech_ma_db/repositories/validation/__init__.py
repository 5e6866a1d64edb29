"""Validation before SQL: rules derived from each model's columns and CHECK constraints.

Every write path of the repositories runs its values through :func:`rules_for` first, so a
bad value raises :class:`~biotech_ma_db.errors.ValidationError` (naming the field, and the
row of a bulk call) before anything reaches PostgreSQL; the session and its transaction
stay usable.  The rules come from the model itself:

- the column type: ``str`` for text (no NUL byte, at most :data:`MAX_TEXT_LENGTH`
  characters unless the column says otherwise), ``int`` within the column's integer width,
  ``Decimal``/``int``/finite ``float`` within a ``Numeric``'s precision, ``bool``,
  timezone-aware ``datetime`` (a naive one is taken as UTC), ``date``, lists for arrays,
  JSON-native mappings for ``JSONB``, and members (or values) of the ``StrEnum`` of an
  enum column;
- nullability, and which columns a caller must give on create;
- simple CHECK constraints, parsed from their text: ``col >= n``, ``col > n``,
  ``col BETWEEN a AND b``, ``col ~ 'regex'``, ``col <@ ARRAY[...]`` and the two-column
  ``a <= b`` / ``a <> b`` (money ``>= 0``, scores 0..100, impact -100..100, percentile
  0..1, the ticker format ...).  Anything more elaborate is left to PostgreSQL, whose
  refusal becomes a typed :class:`~biotech_ma_db.errors.CheckViolationError`;
- money columns (``*_usd``) are never negative, and foreign keys are positive.

Columns the database or the library owns (the key, timestamps, ``version``,
``deleted_at``, generated columns) are read-only here, and unknown names are refused.

The parts, one idea each: :mod:`.rules` (the rules of a model and the row-by-row checks),
:mod:`.values` (the check of one value per column type), :mod:`.constraints` (the CHECK
constraints parsed), :mod:`.bulk` (a batch checked a column at a time),
:mod:`.jsontext` (JSON text as ``jsonb`` takes it) and :mod:`.problems` (the internal
signals).  The names below are the package's surface; import them from here.
"""

from biotech_ma_db.repositories.validation.jsontext import MAX_JSON_SIZE
from biotech_ma_db.repositories.validation.jsontext import json_text as json_text
from biotech_ma_db.repositories.validation.problems import BulkCheck as BulkCheck
from biotech_ma_db.repositories.validation.problems import Check as Check
from biotech_ma_db.repositories.validation.rules import FieldRule as FieldRule
from biotech_ma_db.repositories.validation.rules import ModelRules, check_json, rules_for
from biotech_ma_db.repositories.validation.values import MAX_ARRAY_LENGTH, MAX_TEXT_LENGTH

__all__ = [
    "MAX_ARRAY_LENGTH",
    "MAX_JSON_SIZE",
    "MAX_TEXT_LENGTH",
    "ModelRules",
    "check_json",
    "rules_for",
]
