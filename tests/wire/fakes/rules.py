"""Evaluate Realtime Database security rules (the subset rtbridge generates) for the fake.

Supports ``.read``/``.write``/``.validate`` cascading down named and ``$wildcard`` children, and
expressions over ``auth`` (``auth.uid``, ``auth.token.<claim>[...]``), ``$variables``, ``root``,
``data`` and ``newData`` (``exists()``, ``child()``, ``val()``, ``isString()``,
``hasChildren([...])``), strings' ``beginsWith()`` and ``+``, ``*``, ``>``, ``!``, ``&&``,
``||``, ``===``/``!==``/``==``/``!=``, ``null``, ``true``/``false``. Any error in an expression
denies, as the database does.
"""

from __future__ import annotations

import re
from typing import Any

_TOKEN_RE = re.compile(
    r"'[^']*'|===|!==|==|!=|&&|\|\||!|\$[A-Za-z_][A-Za-z0-9_]*|\bnull\b|\btrue\b|\bfalse\b"
)


class JSString(str):
    """A string with the rules language's methods."""

    def beginsWith(self, prefix: str) -> bool:
        return self.startswith(prefix)

    def endsWith(self, suffix: str) -> bool:
        return self.endswith(suffix)

    def contains(self, part: str) -> bool:
        return part in self


class JSObject(dict[str, Any]):
    """A JSON object read like JavaScript: ``a.b`` and ``a[b]``, ``None`` when missing."""

    def __getattr__(self, name: str) -> Any:
        return wrap(self.get(name))

    def __getitem__(self, name: str) -> Any:
        return wrap(self.get(name))


def wrap(value: Any) -> Any:
    if isinstance(value, dict):
        return JSObject(value)
    if isinstance(value, str):
        return JSString(value)
    return value


class Snapshot:
    """``data`` / ``newData``: the value at a path before or after the write."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def exists(self) -> bool:
        return self.value is not None

    def child(self, path: str) -> Snapshot:
        value = self.value
        for part in [p for p in path.split("/") if p]:
            value = value.get(part) if isinstance(value, dict) else None
        return Snapshot(value)

    def val(self) -> Any:
        return wrap(self.value)

    def isString(self) -> bool:
        return isinstance(self.value, str)

    def hasChildren(self, names: list[str] | None = None) -> bool:
        if not isinstance(self.value, dict):
            return False
        return all(name in self.value for name in names or [])


def _translate(expression: str) -> str:
    def replace(match: re.Match[str]) -> str:
        token = match.group()
        return {
            "===": "==",
            "!==": "!=",
            "&&": " and ",
            "||": " or ",
            "!": " not ",
            "null": "None",
            "true": "True",
            "false": "False",
        }.get(token, "V_" + token[1:] if token.startswith("$") else token)

    return _TOKEN_RE.sub(replace, expression)


def evaluate(expression: Any, variables: dict[str, Any]) -> bool:
    """Return whether a rule (a bool or an expression) allows, given its variables."""
    if isinstance(expression, bool):
        return expression
    names = {f"V_{k[1:]}" if k.startswith("$") else k: v for k, v in variables.items()}
    try:
        return bool(eval(_translate(expression), {"__builtins__": {}}, names))
    except Exception:
        return False


def _walk(rules: dict[str, Any], parts: list[str]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Return (rule node, $variables) from the root down along ``parts`` while nodes exist."""
    node = rules.get("rules", {})
    variables: dict[str, Any] = {}
    trail = [(node, dict(variables))]
    for part in parts:
        if part in node and isinstance(node[part], dict):
            node = node[part]
        else:
            wildcard = next((k for k in node if k.startswith("$")), None)
            if wildcard is None:
                break
            node = node[wildcard]
            variables[wildcard] = JSString(part)
        trail.append((node, dict(variables)))
    return trail


def can_read(
    rules: dict[str, Any], parts: list[str], auth: dict[str, Any] | None, root: Any = None
) -> bool:
    """Return whether ``auth`` may read at ``parts`` (a grant at or above it suffices).

    ``root`` is the whole database, for rules that read ``root.child(...)``.
    """
    for node, variables in _walk(rules, parts):
        context = {**variables, "auth": wrap(auth), "root": Snapshot(root)}
        if ".read" in node and evaluate(node[".read"], context):
            return True
    return False


def can_write(
    rules: dict[str, Any],
    parts: list[str],
    auth: dict[str, Any] | None,
    old: Any,
    new: Any,
    root: Any = None,
) -> bool:
    """Return whether ``auth`` may change the value at ``parts`` from ``old`` to ``new``."""
    trail = _walk(rules, parts)
    allowed = False
    for depth, (node, variables) in enumerate(trail):
        if ".write" not in node:
            continue
        # The fake knows the old and new values only at the written path; rules above it see
        # none (rtbridge's rules grant writes at the leaves only).
        here = depth == len(parts)
        context = {
            **variables,
            "auth": wrap(auth),
            "root": Snapshot(root),
            "data": Snapshot(old if here else None),
            "newData": Snapshot(new if here else None),
        }
        if evaluate(node[".write"], context):
            allowed = True
            break
    if not allowed:
        return False
    node, variables = trail[-1]
    if len(trail) == len(parts) + 1 and ".validate" in node and new is not None:
        context = {**variables, "auth": wrap(auth), "data": Snapshot(old), "newData": Snapshot(new)}
        return evaluate(node[".validate"], context)
    return True
