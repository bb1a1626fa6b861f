"""Alerts: the detector that finds conditions, the book that records them, and the notifier
that delivers them (and approval events) to webhooks."""

from spendgate.alerting.detector import AlertDetector, Findings
from spendgate.alerting.notifier import WebhookNotifier, signature
from spendgate.alerting.payloads import Announcer
from spendgate.alerting.service import AlertBook, AlertService

__all__ = [
    "AlertBook",
    "AlertDetector",
    "AlertService",
    "Announcer",
    "Findings",
    "WebhookNotifier",
    "signature",
]
