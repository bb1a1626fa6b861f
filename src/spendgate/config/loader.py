"""Loading a config: read the file (or the built-in demo), parse the YAML, validate, and
report every problem of the file at once, in line order."""

from __future__ import annotations

from collections.abc import Callable, Collection
from importlib import resources
from pathlib import Path
from typing import Final

from pydantic import ValidationError

from spendgate.config.capabilities import capability_problems
from spendgate.config.errors import ConfigError, ConfigProblem, describe
from spendgate.config.messages import messages
from spendgate.config.references import reference_problems
from spendgate.config.schema import Config
from spendgate.config.yaml_source import line_of, read_yaml, render_path

DEMO_SOURCE: Final = "<built-in demo config>"


def load_config(path: str | Path | None) -> Config:
    """Load and validate a config file; ``None`` loads the built-in demo config."""
    if path is None:
        # demo.yaml lives in the ``spendgate`` package itself, next to this package.
        text = resources.files("spendgate").joinpath("demo.yaml").read_text(encoding="utf-8")
        return parse_config(text, DEMO_SOURCE)
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, [ConfigProblem("", "no such file")]) from None
    except IsADirectoryError:
        raise ConfigError(source, [ConfigProblem("", "is a directory, not a file")]) from None
    except UnicodeDecodeError as error:
        raise ConfigError(source, [ConfigProblem("", f"not UTF-8 text ({error.reason})")]) from None
    except OSError as error:
        raise ConfigError(
            source, [ConfigProblem("", f"cannot be read ({error.strerror})")]
        ) from None
    return parse_config(text, source)


def parse_config(text: str, source: str, *, known_models: Collection[str] | None = None) -> Config:
    """Validate YAML ``text`` (``source`` names it in errors). An empty text is all defaults.

    ``known_models`` are model ids references may name besides configured models; by
    default the price catalog's ids, loaded only if a reference needs them.
    """
    data, lines, found, problems = read_yaml(text)
    if data is None and not problems:
        data = {}
    if problems or not isinstance(data, dict):
        if not problems:
            problems = [
                ConfigProblem(
                    "",
                    "the file must be a mapping of keys (providers, models, budgets, ...), "
                    f"not {describe(data)}",
                    line=1,
                )
            ]
        raise ConfigError(source, problems)

    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as error:
        found.extend(messages(error))
    found.extend(reference_problems(data, _lazy_known_models(known_models)))
    found.extend(capability_problems(data))
    if found:
        ordered = sorted(
            enumerate(found), key=lambda item: (line_of(item[1][0], lines) or 0, item[0])
        )
        raise ConfigError(
            source,
            [
                ConfigProblem(render_path(loc, data), message, line_of(loc, lines))
                for _, (loc, message) in ordered
            ],
        )
    assert config is not None
    config._source = source
    return config


def _lazy_known_models(known: Collection[str] | None) -> Callable[[], Collection[str]]:
    def get() -> Collection[str]:
        if known is not None:
            return known
        from spendgate.catalog import catalog_model_ids

        return catalog_model_ids()

    return get
