"""Reserve/settle ledgers: atomic budget counters per (policy, member, window)."""

from spendgate.ledger.base import Ledger, ReservationLine, ReserveOutcome
from spendgate.ledger.memory import MemoryLedger

__all__ = ["Ledger", "MemoryLedger", "ReservationLine", "ReserveOutcome"]
