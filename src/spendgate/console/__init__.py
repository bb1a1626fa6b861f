"""The web console: usage, routing insights, budgets, approvals, alerts and models, served by
the gateway under ``/console`` and read through the admin API's services."""

from spendgate.console.app import create_console_app

__all__ = ["create_console_app"]
