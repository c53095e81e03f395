"""Channel authorization: the rule registry, model hooks and presence member info.

::

    # myapp/channels.py (auto-discovered, like admin.py)
    import rtbridge

    @rtbridge.channel("private-todo.todolist.{pk}")
    def can_read_list(user, pk):                  # True / False
        return TodoList.objects.filter(pk=pk, owner=user).exists()

    @rtbridge.channel("presence-todo.todoitem.{pk}")
    def editors(user, pk):                        # member info, or None to refuse
        if user.is_authenticated:
            return {"id": user.pk, "name": user.get_full_name()}
        return None

A ``private-`` channel of a publishing model with an ``authorize`` hook in its ``RTBridge``
options (``private-todo.todoitem;todo_list_id=1``) is authorized by that hook when no rule
matches. Everything else protected is refused: the default is deny.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.utils.module_loading import autodiscover_modules, import_string

from . import channel_names, exceptions, tokens
from .messages import encode_json
from .model_config import config_for_base

__all__ = ["authorize", "autodiscover", "channel", "rules"]

#: Names that moved out of this module (issue 11): served for one more release with a
#: DeprecationWarning naming the new path. Resolved by dotted path when first asked for.
_MOVED = {
    "DEFAULT_TOKEN_TTL": "rtbridge.tokens.DEFAULT_TOKEN_TTL",
    "Grant": "rtbridge.tokens.Grant",
    "sign_subscription": "rtbridge.tokens.sign_subscription",
    "verify_subscription": "rtbridge.tokens.verify_subscription",
    "InvalidToken": "rtbridge.exceptions.InvalidToken",
    "Refused": "rtbridge.exceptions.Refused",
    "revoke": "rtbridge.revoke",
}

_PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# A placeholder matches one name segment: no "." or ";" (the scheme's separators).
_SEGMENT = r"[^.;]+"
MAX_MEMBER_INFO_BYTES = 1000


@dataclass(frozen=True)
class Rule:
    """One registered channel pattern and the callback that decides on it."""

    pattern: str
    regex: re.Pattern[str]
    callback: Callable[..., Any]

    @property
    def presence(self) -> bool:
        return self.pattern.startswith(channel_names.PRESENCE_PREFIX)


_rules: list[Rule] = []


def _compile(pattern: str) -> re.Pattern[str]:
    if not pattern.startswith((channel_names.PRIVATE_PREFIX, channel_names.PRESENCE_PREFIX)):
        raise ValueError(
            f"Channel pattern {pattern!r} must start with 'private-' or 'presence-'; public "
            "channels need no authorization."
        )
    names = _PLACEHOLDER_RE.findall(pattern)
    if len(names) != len(set(names)):
        raise ValueError(f"Channel pattern {pattern!r} repeats a placeholder.")
    parts: list[str] = []
    last = 0
    for match in _PLACEHOLDER_RE.finditer(pattern):
        literal = pattern[last : match.start()]
        if literal:
            channel_names.validate_channel(literal.rstrip(".;=") or "x")
        parts.append(re.escape(literal))
        parts.append(f"(?P<{match.group(1)}>{_SEGMENT})")
        last = match.end()
    parts.append(re.escape(pattern[last:]))
    return re.compile("".join(parts))


def channel(pattern: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as the authorizer of channels matching ``pattern``.

    ``pattern`` is a protected channel name with ``{name}`` placeholders, each matching one
    name segment (no ``.`` or ``;``) and passed to the function as a keyword argument (a
    string). For ``private-`` patterns the function returns ``True``/``False``; for
    ``presence-`` patterns it returns the member's info (a JSON-able dict, ideally with an
    ``"id"``), or ``None`` to refuse.
    """
    regex = _compile(pattern)

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        _rules[:] = [r for r in _rules if r.pattern != pattern]
        _rules.append(Rule(pattern, regex, func))
        return func

    return decorator


def rules() -> list[Rule]:
    """Return the registered rules, in registration order."""
    return list(_rules)


def autodiscover() -> None:
    """Import ``<app>.channels`` of every installed app (called by rtbridge's AppConfig)."""
    autodiscover_modules("channels")


def _member(user: Any, info: Any, channel_name: str) -> dict[str, Any]:
    if not isinstance(info, dict):
        raise TypeError(
            f"The presence authorizer of {channel_name!r} returned {info!r}; return a dict of "
            "member info (or None to refuse)."
        )
    member_id = info.get("id", tokens.user_id_of(user))
    if member_id is None:
        raise TypeError(
            f"The presence authorizer of {channel_name!r} returned no 'id' for an anonymous "
            "user; include an 'id' in the member info."
        )
    try:
        text = encode_json(info)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"Member info for {channel_name!r} cannot be encoded as JSON: {exc}"
        ) from None
    if len(text.encode()) > MAX_MEMBER_INFO_BYTES:
        raise ValueError(
            f"Member info for {channel_name!r} is {len(text.encode())} bytes as JSON; keep it "
            f"under {MAX_MEMBER_INFO_BYTES} (it travels with every presence event)."
        )
    return {"id": str(member_id), "info": json.loads(text)}


def _authorize_model_channel(user: Any, name: str) -> bool | None:
    """Authorize ``private-<model channel>`` by the model's ``authorize`` hook; None if no model."""
    base, filters = channel_names.parse_filter_channel(name)
    pk: str | None = None
    config = config_for_base(base)
    if config is None and "." in base:
        parent, _, last = base.rpartition(".")
        config = config_for_base(parent)
        if config is not None:
            base, pk = parent, channel_names.decode_filter_value(last)
    if config is None or config.authorize is None:
        return None
    if filters:
        if pk is not None:
            raise exceptions.Refused(
                f"Channel {name!r} mixes an object id and filters.", "invalid_channel"
            )
        if tuple(sorted(filters)) not in config.filters:
            allowed = ", ".join("+".join(group) for group in config.filters) or "none"
            raise exceptions.Refused(
                f"Channel {name!r} filters on {', '.join(sorted(filters))}, which "
                f"{config.model._meta.label} does not declare; declared filters: {allowed}.",
                "undeclared_filter",
            )
    values = {key: channel_names.decode_filter_value(v) for key, v in filters.items()}
    if pk is not None:
        values = {"pk": pk}
    return bool(config.authorize(user, values))


def authorize(user: Any, name: str) -> tokens.Grant:
    """Decide whether ``user`` may subscribe to the protected channel ``name``.

    Returns a :class:`~rtbridge.tokens.Grant` (with member info on presence channels) or
    raises :class:`~rtbridge.exceptions.Refused` saying why. Public channel names are granted
    as they are.
    """
    channel_names.validate_channel(name)
    user_id = tokens.user_id_of(user)
    if not channel_names.is_protected(name):
        return tokens.Grant(name, user_id)
    for rule in _rules:
        match = rule.regex.fullmatch(name)
        if match is None:
            continue
        result = rule.callback(user, **match.groupdict())
        if rule.presence:
            if result is None or result is False:
                raise exceptions.Refused(_refusal(user, name), _refusal_code(user))
            return tokens.Grant(name, user_id, _member(user, result, name))
        if result is not True:
            raise exceptions.Refused(_refusal(user, name), _refusal_code(user))
        return tokens.Grant(name, user_id)
    if name.startswith(channel_names.PRIVATE_PREFIX):
        allowed = _authorize_model_channel(user, name)
        if allowed:
            return tokens.Grant(name, user_id)
        if allowed is False:
            raise exceptions.Refused(_refusal(user, name), _refusal_code(user))
    raise exceptions.Refused(
        f"No authorization rule matches {name!r}; register one with "
        "@rtbridge.channel(pattern) in <app>/channels.py (protected channels are refused "
        "by default).",
        "no_rule",
    )


def _refusal(user: Any, name: str) -> str:
    if tokens.user_id_of(user) is None:
        return f"Log in to subscribe to {name!r}."
    return f"You may not subscribe to {name!r}."


def _refusal_code(user: Any) -> str:
    return "login_required" if tokens.user_id_of(user) is None else "forbidden"


def __getattr__(name: str) -> Any:
    """Serve a name listed in ``_MOVED`` from its new home, with a DeprecationWarning."""
    new_path = _MOVED.get(name)
    if new_path is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"rtbridge.auth.{name} has moved to {new_path}; import it from there (the old path "
        "goes away in the next release).",
        DeprecationWarning,
        stacklevel=2,
    )
    return import_string(new_path)
