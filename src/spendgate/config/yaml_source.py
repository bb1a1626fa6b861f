"""YAML with line numbers: parsing that remembers the line of every key and list item, finds
duplicate keys, and renders a location as a path in YAML terms."""

from __future__ import annotations

from collections.abc import Mapping

import yaml

from spendgate.config.errors import ConfigProblem, Loc

# Lists whose items are named by a key: the name is shown in paths, e.g.
# ``budgets[1] (acme-daily).hard_limit``.
_ITEM_NAME = {"providers": "id", "models": "id", "keys": "id", "budgets": "id", "pricing": "model"}


def read_yaml(
    text: str,
) -> tuple[object, dict[Loc, int], list[tuple[Loc, str]], list[ConfigProblem]]:
    """Parse YAML: the data, the line of every key and list item, duplicate keys (which
    PyYAML would silently resolve to the last one) and fatal problems (syntax errors)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        reason = error.problem or "invalid YAML"
        if error.context:
            started = error.context_mark
            where = "" if started is None else f" started on line {started.line + 1}"
            reason += f" ({error.context}{where})"
        return (
            None,
            {},
            [],
            [
                ConfigProblem(
                    "",
                    f"YAML syntax error: {reason}",
                    line=None if mark is None else mark.line + 1,
                    column=None if mark is None else mark.column + 1,
                )
            ],
        )
    except yaml.YAMLError as error:
        return None, {}, [], [ConfigProblem("", f"YAML error: {error}")]
    if node is None:
        return None, {}, [], []
    lines: dict[Loc, int] = {}
    duplicates: list[tuple[Loc, str]] = []
    _walk(node, (), lines, duplicates, set())
    try:
        data = yaml.SafeLoader("").construct_document(node)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        return (
            None,
            lines,
            [],
            [
                ConfigProblem(
                    "",
                    f"YAML error: {getattr(error, 'problem', None) or error}",
                    line=None if mark is None else mark.line + 1,
                )
            ],
        )
    return data, lines, duplicates, []


def _walk(
    node: yaml.Node,
    loc: Loc,
    lines: dict[Loc, int],
    duplicates: list[tuple[Loc, str]],
    active: set[int],
) -> None:
    if id(node) in active:  # an alias that contains itself
        return
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first_seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
                continue
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in first_seen:
                duplicates.append(
                    (
                        (*loc, key),
                        f"duplicate key on line {line} (first set on line {first_seen[key]}); "
                        "YAML would silently keep only the last value",
                    )
                )
                continue
            first_seen[key] = line
            lines[(*loc, key)] = line
            _walk(value_node, (*loc, key), lines, duplicates, active)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*loc, index)] = item.start_mark.line + 1
            _walk(item, (*loc, index), lines, duplicates, active)
    active.discard(id(node))


def line_of(loc: Loc, lines: Mapping[Loc, int]) -> int | None:
    """The line of ``loc``, or of its nearest ancestor (a missing key has no line)."""
    for end in range(len(loc), 0, -1):
        line = lines.get(loc[:end])
        if line is not None:
            return line
    return None


def render_path(loc: Loc, data: object) -> str:
    """``loc`` in YAML terms: ``budgets[1] (acme-daily).hard_limit``."""
    text = ""
    node: object = data
    for position, part in enumerate(loc):
        if isinstance(part, int):
            text += f"[{part}]"
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            name_key = _ITEM_NAME.get(str(loc[0])) if position == 1 else None
            if name_key and isinstance(node, dict) and isinstance(node.get(name_key), str):
                text += f" ({node[name_key]})"
        else:
            text += f".{part}" if text else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return text
