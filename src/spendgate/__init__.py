"""spendgate: usage governance for LLM traffic — budgets, smart routing, failover, approvals.

The package root re-exports the public API: the pure domain (``spendgate.domain``), the
config loader, the ``Governor`` application service and the in-memory ledger.
"""

from spendgate import domain
from spendgate.config import Config, ConfigError, load_config
from spendgate.domain import *  # noqa: F403 - the domain's public API is the package's
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
