"""The ``spendgate.yaml`` config file: schema, validation with operator-friendly errors, and
conversion to domain objects.

Every problem in a file is reported at once, one line each, naming the file, the line, the
path to the bad key in YAML terms (``budgets[1] (acme-daily).hard_limit``) and why. The
schema is strict (unknown keys are errors, with a "did you mean" hint) because a silently
ignored typo in a budget is a budget that does not exist.

Money is ``Decimal``: YAML floats are converted through ``str`` so ``0.1`` stays exactly 0.1.
Secrets are never in the file: providers and keys name the environment variables holding
them, and a missing variable is a *problem* to report (``provider_problems``), not a crash.

Modules: ``errors`` (problems and their wording), ``values`` (value types), one module per
section (``providers``, ``pricing``, ``routing``, ``keys``, ``budgets``, ``rate_limits``,
``alerts``, ``journal``),
``schema`` (the top-level ``Config``), ``convert`` (to domain objects), ``yaml_source``
(YAML with line numbers), ``messages`` (pydantic errors in operator terms), ``references``
(checks across sections) and ``loader`` (``load_config``, ``parse_config``).
"""

from spendgate.config.alerts import AlertsSpec
from spendgate.config.budgets import BudgetSpec
from spendgate.config.errors import ConfigError, ConfigProblem
from spendgate.config.journal import JournalSpec
from spendgate.config.keys import KeySpec
from spendgate.config.loader import DEMO_SOURCE, load_config, parse_config
from spendgate.config.pricing import PricingSpec
from spendgate.config.providers import ModelSpec, ProviderSpec
from spendgate.config.routing import RoutingSpec
from spendgate.config.schema import DEFAULT_DATABASE_URL, Config

__all__ = [
    "DEFAULT_DATABASE_URL",
    "DEMO_SOURCE",
    "AlertsSpec",
    "BudgetSpec",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "JournalSpec",
    "KeySpec",
    "ModelSpec",
    "PricingSpec",
    "ProviderSpec",
    "RoutingSpec",
    "load_config",
    "parse_config",
]
