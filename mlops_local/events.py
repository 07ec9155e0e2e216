"""EventBridge event patterns, matched the way EventBridge matches them; pure.

The local platform has no event bus that reacts to alarms, so the demo asks the same
question EventBridge would — does this rule's pattern (read back from the emulator, as the
plan declared it) match this event? — and starts the rule's target itself.

Supported: nested objects, arrays of literal values, and the content filters `prefix`,
`suffix`, `equals-ignore-case`, `anything-but` (a value, a list, or a prefix), `exists` and
`numeric`. Anything else is refused by name rather than silently not matching.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

_MISSING: Final = object()
_NUMERIC_OPS: Final[Mapping[str, Callable[[float, float], bool]]] = {
    "=": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class PatternError(ValueError):
    """The pattern is not one EventBridge (or this matcher) accepts; the message says where."""


def parse_pattern(text: str | Mapping[str, Any]) -> dict[str, Any]:
    """A rule's `EventPattern` (JSON text, as PutRule takes it) as an object."""
    if isinstance(text, Mapping):
        return dict(text)
    try:
        pattern = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PatternError(f"event pattern is not JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(pattern, dict):
        raise PatternError(f"event pattern is a {type(pattern).__name__}, not an object")
    return pattern


def matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """Whether `event` matches `pattern`: every field the pattern names must match."""
    return _match_object(pattern, event, path="")


def _match_object(pattern: Mapping[str, Any], event: Any, path: str) -> bool:
    for key, expected in pattern.items():
        where = f"{path}.{key}" if path else key
        value = event.get(key, _MISSING) if isinstance(event, Mapping) else _MISSING
        if isinstance(expected, Mapping):
            if not _match_object(expected, value, where):
                return False
        elif isinstance(expected, list):
            if not _match_leaf(expected, value, where):
                return False
        else:
            raise PatternError(
                f"event pattern field {where!r}: {expected!r} must be an array of values "
                "or an object"
            )
    return True


def _match_leaf(allowed: Sequence[Any], value: Any, path: str) -> bool:
    if not allowed:
        raise PatternError(f"event pattern field {path!r}: an empty array matches nothing")
    values = value if isinstance(value, list) else [value]
    return any(_match_one(rule, v, path) for rule in allowed for v in values)


def _same(a: Any, b: Any) -> bool:
    # JSON true is not 1, and 1 matches 1.0: compare numbers as numbers, booleans apart.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return float(a) == float(b)
    return type(a) is type(b) and bool(a == b)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _match_one(rule: Any, value: Any, path: str) -> bool:
    if not isinstance(rule, Mapping):
        return value is not _MISSING and _same(rule, value)
    if len(rule) != 1:
        raise PatternError(f"event pattern field {path!r}: a filter has exactly one key: {rule}")
    ((name, arg),) = rule.items()
    if name == "exists":
        if not isinstance(arg, bool):
            raise PatternError(f"event pattern field {path!r}: exists takes true or false")
        return (value is not _MISSING) == arg
    if value is _MISSING:
        return False
    if name == "prefix":
        return isinstance(value, str) and value.startswith(_text(arg, name, path))
    if name == "suffix":
        return isinstance(value, str) and value.endswith(_text(arg, name, path))
    if name == "equals-ignore-case":
        return isinstance(value, str) and value.casefold() == _text(arg, name, path).casefold()
    if name == "anything-but":
        if isinstance(arg, Mapping):
            return not _match_one(arg, value, path)
        excluded = arg if isinstance(arg, list) else [arg]
        return not any(_same(e, value) for e in excluded)
    if name == "numeric":
        return _numeric(arg, value, path)
    raise PatternError(
        f"event pattern field {path!r}: filter {name!r} is not supported here (supported: "
        "prefix, suffix, equals-ignore-case, anything-but, exists, numeric)"
    )


def _text(arg: Any, name: str, path: str) -> str:
    if not isinstance(arg, str):
        raise PatternError(f"event pattern field {path!r}: {name} takes a string, not {arg!r}")
    return arg


def _numeric(arg: Any, value: Any, path: str) -> bool:
    if not isinstance(arg, list) or len(arg) not in (2, 4):
        raise PatternError(
            f"event pattern field {path!r}: numeric takes [op, n] or [op, n, op, n], not {arg!r}"
        )
    if not _is_number(value):
        return False
    for op, bound in zip(arg[::2], arg[1::2], strict=True):
        if op not in _NUMERIC_OPS or not _is_number(bound):
            raise PatternError(f"event pattern field {path!r}: numeric {op!r} {bound!r}")
        if not _NUMERIC_OPS[op](float(value), float(bound)):
            return False
    return True
