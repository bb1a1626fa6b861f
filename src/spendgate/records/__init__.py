"""Runtime-managed records: budgets, price overrides and API keys created through the admin
API, stored in the database (source "api") and applied live to the running gateway.

Modules: ``service`` (``RuntimeRecords``), ``live`` (rebuilding the governance state),
``budgets``, ``pricing``, ``keys`` (one per record kind), ``budget_specs`` (policy ↔ document),
``validation`` (the YAML specs and cross-checks, reused), ``errors``.
"""

from spendgate.records.errors import (
    ConfigManagedError,
    RecordConflictError,
    RecordError,
    RecordInvalidError,
    RecordNotFoundError,
)
from spendgate.records.service import RuntimeRecords

__all__ = [
    "ConfigManagedError",
    "RecordConflictError",
    "RecordError",
    "RecordInvalidError",
    "RecordNotFoundError",
    "RuntimeRecords",
]
