"""The building blocks of every section: the strict base model and the value types (names,
environment variable names, URLs, timezones, money, durations, timestamps) with their checks.

Money is ``Decimal``: YAML floats are converted through ``str`` so ``0.1`` stays exactly 0.1.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
)

from spendgate.config.errors import describe, invalid, suggest
from spendgate.domain.amounts import amount_problem
from spendgate.domain.keys import PERMISSIONS

_ID_RE = re.compile(r"^\S+$")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DURATION_RE = re.compile(r"^(\d+)([smhdw])$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class Spec(BaseModel):
    """The base of every section: unknown keys are errors (a silently ignored typo in a
    budget is a budget that does not exist) and a validated section is immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# Ids are stored in columns 200 characters wide, some with a suffix (a budget's generation)
# or a prefix (an agent's tenant): 128 leaves them room.
MAX_ID_LENGTH = 128


def _check_id(value: str) -> str:
    if not _ID_RE.match(value):
        raise invalid(f"must be a non-empty name without spaces, got {value!r}")
    if len(value) > MAX_ID_LENGTH:
        raise invalid(f"must be at most {MAX_ID_LENGTH} characters, got {len(value)}")
    return value


def _check_env_name(value: str) -> str:
    if not _ENV_RE.match(value):
        raise invalid(
            f"{value!r} is not an environment variable name (letters, digits and _); "
            "name the variable that holds the secret, never the secret itself"
        )
    return value


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise invalid(f"expected an http:// or https:// URL, got {value!r}")
    return value


def _check_database_url(value: str) -> str:
    scheme = value.partition("://")[0].partition("+")[0]
    if "://" not in value or scheme not in ("sqlite", "postgresql", "postgres"):
        raise invalid(f"expected a sqlite:///path or postgresql://... URL, got {value!r}")
    return value


def _check_ledger_url(value: str) -> str:
    scheme = value.partition("://")[0]
    if "://" not in value or scheme not in ("redis", "rediss", "unix"):
        raise invalid(
            f"expected a redis://host:port/db, rediss://… or unix:///path.sock URL, got {value!r}"
        )
    return value


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a path
        raise invalid(
            f"unknown IANA timezone {value!r}{suggest(value, available_timezones())}"
        ) from None
    return value


def _check_permission(value: str) -> str:
    if value not in PERMISSIONS:
        known = ", ".join(sorted(PERMISSIONS))
        raise invalid(f"unknown permission {value!r}{suggest(value, PERMISSIONS)}; known: {known}")
    return value


def _number_input(value: object) -> object:
    """YAML numbers for Decimal/float fields: no booleans; floats via ``str`` (exact)."""
    if isinstance(value, bool):
        raise invalid(f"expected a number, got {describe(value)}")
    if isinstance(value, float):
        return str(value)
    return value


def _check_amount(value: Decimal) -> Decimal:
    problem = amount_problem(value)
    if problem is not None:
        raise invalid(problem)
    return value


def _duration_input(value: object) -> timedelta:
    if not isinstance(value, str):
        raise invalid(f"expected a duration such as 30m, 12h, 7d or 2w, got {describe(value)}")
    match = _DURATION_RE.match(value.strip())
    if match is None:
        raise invalid(
            f"malformed duration {value!r}; expected a number and a unit: 30s, 30m, 12h, 7d or 2w"
        )
    amount = int(match.group(1))
    if amount <= 0:
        raise invalid(f"duration {value!r} must be positive")
    try:
        return timedelta(**{_DURATION_UNITS[match.group(2)]: amount})
    except OverflowError:  # beyond a million years: no setting means that
        raise invalid(f"duration {value!r} is too long") from None


def _timestamp_input(value: object) -> object:
    # A date alone means its UTC midnight (genai-prices dates prices the same way).
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, time(), UTC)
    return value


def _as_utc(value: datetime) -> datetime:
    # Naive timestamps are UTC, like the catalog's; aware ones are normalised to UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Id = Annotated[StrictStr, AfterValidator(_check_id)]
EnvName = Annotated[StrictStr, AfterValidator(_check_env_name)]
Url = Annotated[StrictStr, AfterValidator(_check_url)]
DatabaseUrl = Annotated[StrictStr, AfterValidator(_check_database_url)]
LedgerUrl = Annotated[StrictStr, AfterValidator(_check_ledger_url)]
TimezoneName = Annotated[StrictStr, AfterValidator(_check_timezone)]
Permission = Annotated[StrictStr, AfterValidator(_check_permission)]
Money = Annotated[Decimal, BeforeValidator(_number_input), AfterValidator(_check_amount)]
Fraction = Annotated[float, BeforeValidator(_number_input), Field(ge=0, le=1)]
PositiveInt = Annotated[StrictInt, Field(gt=0)]
PositiveSeconds = Annotated[float, BeforeValidator(_number_input), Field(gt=0)]
Duration = Annotated[timedelta, BeforeValidator(_duration_input)]
Timestamp = Annotated[datetime, BeforeValidator(_timestamp_input), AfterValidator(_as_utc)]


def non_empty(name: str, values: list[str] | None) -> None:
    if values is not None and not values:
        raise invalid(f"an empty {name} list matches nothing; omit the key to allow any")
