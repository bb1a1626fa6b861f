"""spendgate: usage governance for LLM traffic — budgets, smart routing, failover, approvals.

The package root re-exports the public API: the pure domain (``spendgate.domain``), the
config loader, the ``Governor`` application service and the in-memory ledger.

The config loader, the governor and the ledger are imported when first asked for: every
process that imports any ``spendgate`` module runs this file, and the journal's writer
process needs none of them (pydantic alone is ~6 MB).
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from spendgate import domain
from spendgate.domain import *  # noqa: F403 - the domain's public API is the package's

if TYPE_CHECKING:
    from spendgate.config import Config, ConfigError, load_config
    from spendgate.governor import Governor
    from spendgate.ledger import MemoryLedger, ReserveOutcome

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigError",
    "Governor",
    "MemoryLedger",
    "ReserveOutcome",
    "__version__",
    "load_config",
]
__all__ += domain.__all__

_LAZY = {
    "Config": "spendgate.config",
    "ConfigError": "spendgate.config",
    "load_config": "spendgate.config",
    "Governor": "spendgate.governor",
    "MemoryLedger": "spendgate.ledger",
    "ReserveOutcome": "spendgate.ledger",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'spendgate' has no attribute {name!r}")
    return getattr(import_module(module), name)
