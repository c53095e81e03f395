"""The ``Origin`` policy and ``RTBRIDGE_SERVER`` validation."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from rtbridge import conf
from rtbridge.server.checks import check_server_settings
from rtbridge.server.config import OriginPolicy, ServerConfig


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://example.com", True),
        ("http://example.com:8000", True),  # any port for an allowed host
        ("https://api.example.org", True),  # ".example.org" covers subdomains
        ("https://example.org", True),
        ("https://evil.com", False),
        ("https://example.com.evil.com", False),
        ("ftp://example.com", False),
        ("null", False),
        ("", False),
        ("https://user@example.com", False),
    ],
)
def test_derived_from_allowed_hosts(origin: str, allowed: bool) -> None:
    policy = OriginPolicy(None, ["example.com", ".example.org"], debug=False)
    assert policy.allows(origin) is allowed


def test_wildcard_host_counts_only_with_debug() -> None:
    assert not OriginPolicy(None, ["*"], debug=False).allows("https://evil.com")
    assert OriginPolicy(None, ["*"], debug=True).allows("https://evil.com")


def test_debug_with_no_allowed_hosts_allows_localhost_only() -> None:
    policy = OriginPolicy(None, [], debug=True)
    assert policy.allows("http://localhost:3000")
    assert policy.allows("http://127.0.0.1:8000")
    assert policy.allows("http://[::1]:8000")
    assert not policy.allows("http://example.com")
    assert not OriginPolicy(None, [], debug=False).allows("http://localhost:3000")


def test_explicit_origins_compare_scheme_host_and_port() -> None:
    policy = OriginPolicy(["https://app.example.com", "http://localhost:8000"])
    assert policy.allows("https://app.example.com")
    assert policy.allows("https://app.example.com:443")
    assert policy.allows("HTTPS://APP.EXAMPLE.COM")
    assert not policy.allows("http://app.example.com")
    assert not policy.allows("https://app.example.com:8443")
    assert policy.allows("http://localhost:8000")
    assert not policy.allows("http://localhost:8001")
    assert OriginPolicy("*").allows("null")


def test_same_origin_is_always_allowed() -> None:
    policy = OriginPolicy(["https://other.example"])
    assert policy.allows("http://node1.internal:9000", host="node1.internal:9000")
    assert policy.allows("https://rt.example.com", host="rt.example.com")
    assert not policy.allows("http://node1.internal:9001", host="node1.internal:9000")
    assert not policy.allows("https://rt.example.com", host="rt.example.com:8443")


def test_bad_origin_setting_names_the_entry() -> None:
    with pytest.raises(ImproperlyConfigured, match="'example.com'"):
        OriginPolicy(["example.com"])


def test_from_settings(settings: Any) -> None:
    settings.RTBRIDGE_ALLOWED_ORIGINS = ["https://a.example"]
    assert OriginPolicy.from_settings().allows("https://a.example")
    settings.RTBRIDGE_ALLOWED_ORIGINS = None
    settings.ALLOWED_HOSTS = ["b.example"]
    assert OriginPolicy.from_settings().allows("http://b.example:1234")


def test_server_settings_defaults_and_overrides(settings: Any) -> None:
    settings.RTBRIDGE_SERVER = {"heartbeat": 10}
    config = ServerConfig.load({"max_subscriptions": 3})
    assert (config.heartbeat, config.max_subscriptions) == (10.0, 3)
    assert config.path == "/rtbridge/ws"
    assert config.max_buffer_bytes == 1024 * 1024


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ({"heartbeet": 1}, "unknown key 'heartbeet'"),
        ({"heartbeat": "25"}, "'heartbeat'"),
        ({"max_connections": 0}, "'max_connections'"),
        ({"max_frame_bytes": True}, "'max_frame_bytes'"),
        ({"path": "ws"}, "'path'"),
        ({"public_url": "http://x"}, "wss://"),
        ({"serve_static": "yes"}, "'serve_static'"),
        ({"heartbeat": 30, "idle_timeout": 30}, "idle_timeout must be longer than heartbeat"),
        ({"heartbeat": 0}, "both > 0"),
        ({"presence_ttl": 25}, "'presence_ttl'"),
        ({"presence_ttl": 0}, "'presence_ttl'"),
        ({"whisper_rate": 0}, "'whisper_rate'"),
        ({"call_rate": 1.5}, "'call_rate'"),
        ({"call_threads": "8"}, "'call_threads'"),
        ({"event_loop": "trio"}, "'event_loop'"),
    ],
)
def test_server_settings_errors_name_the_key(settings: Any, value: Any, match: str) -> None:
    settings.RTBRIDGE_SERVER = value
    with pytest.raises(ImproperlyConfigured, match=match):
        conf.server_settings()


def test_server_settings_must_be_a_dict(settings: Any) -> None:
    settings.RTBRIDGE_SERVER = [("path", "/ws")]
    with pytest.raises(ImproperlyConfigured, match="must be a dict"):
        conf.server_settings()


def test_new_server_settings_defaults() -> None:
    config = ServerConfig.load()
    assert (config.presence_ttl, config.whisper_rate, config.call_rate, config.call_threads) == (
        15.0,
        10,
        20,
        8,
    )


def test_system_check_reports_bad_server_settings_and_origins(settings: Any) -> None:
    assert check_server_settings() == []
    settings.RTBRIDGE_SERVER = {"whisper_rate": -1}
    settings.RTBRIDGE_ALLOWED_ORIGINS = ["example.com"]
    settings.RTBRIDGE_TOKEN_TTL = "1h"
    errors = check_server_settings()
    assert [error.id for error in errors] == ["rtbridge.E020", "rtbridge.E021", "rtbridge.E022"]
    assert "'1h'" in errors[2].msg
    assert "whisper_rate" in errors[0].msg
    assert "'example.com'" in errors[1].msg


def test_same_origin_needs_an_allowed_host_when_derived_from_allowed_hosts() -> None:
    policy = OriginPolicy(None, ["example.com"], debug=False)
    assert policy.allows("http://example.com:8000", host="example.com:8000")
    # DNS rebinding: the attacker's name pointed at this server; Origin and Host agree.
    assert not policy.allows("http://rebind.evil:8000", host="rebind.evil:8000")
