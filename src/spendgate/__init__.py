"""spendgate (root API assembled once config lands)."""
