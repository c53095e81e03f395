"""What operators need: probes, Prometheus metrics, JSON logs, trusted proxies, the token TTL."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from django.core.exceptions import ImproperlyConfigured
from prometheus_client.parser import text_string_to_metric_families

from rtbridge import conf
from rtbridge.exceptions import InvalidToken
from rtbridge.messages import Message
from rtbridge.server import RedisBroker, Server
from rtbridge.server.logs import FIELDS, HostileWarnings, JsonFormatter, event
from rtbridge.server.proxies import TrustedProxies
from rtbridge.tokens import Grant, sign_subscription, verify_subscription
from tests.server.helpers import Client, eventually, token
from tests.server.rawsocket import RawSocket
from tests.services import free_port

MakeServer = Callable[..., Server]


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Return (status, content type, body) of a GET, errors included."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


async def aget(url: str) -> tuple[int, str, str]:
    return await asyncio.get_running_loop().run_in_executor(None, http_get, url)


# Probes ---------------------------------------------------------------------------------------


async def test_healthz_and_readyz_on_the_socket_port(server: Server) -> None:
    status, content_type, body = await aget(server.http_url + "/healthz")
    assert (status, json.loads(body)) == (200, {"status": "alive"})
    assert content_type == "application/json"
    status, _, body = await aget(server.http_url + "/readyz")
    assert (status, json.loads(body)) == (200, {"status": "ready"})


async def test_readyz_is_503_with_a_reason_when_redis_is_away(make_server: MakeServer) -> None:
    broker = RedisBroker(f"redis://127.0.0.1:{free_port()}/0")
    server = make_server(broker=broker)
    status, _, body = await aget(server.http_url + "/readyz")
    assert status == 503
    answer = json.loads(body)
    assert answer["status"] == "unavailable"
    assert "broker is not connected" in answer["reason"] and "redis" in answer["reason"]
    # Alive all the same: the process serves (a liveness probe must not restart it).
    assert (await aget(server.http_url + "/healthz"))[0] == 200


async def test_a_draining_node_is_unready_and_refuses_handshakes_with_503(
    server: Server,
) -> None:
    client = await Client.open(server.url)
    server.draining = True  # what astop() sets first
    status, _, body = await aget(server.http_url + "/readyz")
    assert status == 503 and "draining" in json.loads(body)["reason"]
    # Before the upgrade, so a proxy can pass the request on to another node.
    status, sock = await RawSocket.handshake(server.port)
    sock.close()
    assert status == 503
    server.draining = False
    await client.close()


async def test_probe_paths_are_settings_and_none_turns_them_off(make_server: MakeServer) -> None:
    server = make_server(
        options={"health_path": "/live", "ready_path": "/ready", "metrics_path": None}
    )
    assert (await aget(server.http_url + "/live"))[0] == 200
    assert (await aget(server.http_url + "/ready"))[0] == 200
    assert (await aget(server.http_url + "/healthz"))[0] == 404
    assert (await aget(server.http_url + "/metrics"))[0] == 404
    assert server.metrics is None and server.hub.latency is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"health_path": "healthz"}, "health_path"),
        ({"metrics_path": "/rtbridge/ws"}, "must differ"),
        ({"log_format": "xml"}, "log_format"),
        ({"compression": "yes"}, "compression"),
        ({"trusted_proxies": "10.0.0.1"}, "trusted_proxies"),
        ({"max_json_depth": 0}, "max_json_depth"),
    ],
)
def test_operator_settings_are_validated(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        conf.server_settings(options)


# Metrics --------------------------------------------------------------------------------------


def scrape(server: Server) -> dict[str, float]:
    status, content_type, body = http_get(server.http_url + "/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if not sample.name.endswith("_bucket"):  # the rest has no labels
                values[sample.name] = sample.value
    return values


async def test_metrics_count_what_the_node_does(server: Server) -> None:
    clients = [await Client.open(server.url) for _ in range(3)]
    for client in clients:
        await client.subscribe("room")
    await clients[0].subscribe("other")
    for number in range(5):
        server.publish(Message("room", "said", {"n": number}))
    for client in clients:
        await client.messages(5)
    await clients[0].send("junk")
    await clients[0].recv_op("error")
    loop = asyncio.get_running_loop()
    values = await loop.run_in_executor(None, scrape, server)
    assert values["rtbridge_connections"] == 3
    assert values["rtbridge_subscriptions"] == 4
    assert values["rtbridge_channels"] == 2
    assert values["rtbridge_messages_in_total"] == 5
    assert values["rtbridge_deliveries_total"] == 15
    assert values["rtbridge_bytes_out_total"] > 15 * len('{"op":"message"}')
    assert values["rtbridge_bad_frames_total"] == 1
    assert values["rtbridge_connections_opened_total"] == 3
    assert values["rtbridge_broker_connected"] == 1
    assert values["rtbridge_ready"] == 1
    # One latency observation per message and channel (not per delivery), all well under 1 s.
    assert values["rtbridge_delivery_latency_seconds_count"] == 5
    assert 0 < values["rtbridge_delivery_latency_seconds_sum"] < 5.0
    assert values["process_resident_memory_bytes"] > 0
    for client in clients:
        await client.close()
    await eventually(lambda: scrape(server)["rtbridge_connections_closed_total"] == 3)


async def test_metrics_export_the_loop_lag_probe(server: Server) -> None:
    loop = asyncio.get_running_loop()
    # Hold the node's loop for 60 ms: the probe (due every 20 ms) wakes up 40 ms late or more.
    server.call_soon(time.sleep, 0.06)
    await eventually(lambda: server.stats.loop_lag_max >= 0.04)
    status, _content_type, body = await loop.run_in_executor(
        None, http_get, server.http_url + "/metrics"
    )
    assert status == 200
    families = {family.name: family for family in text_string_to_metric_families(body)}
    lag = families["rtbridge_loop_lag_seconds"]
    buckets = {s.labels["le"]: s.value for s in lag.samples if s.name.endswith("_bucket")}
    count = next(s.value for s in lag.samples if s.name.endswith("_count"))
    assert buckets["+Inf"] == count >= 1
    assert buckets["0.02"] < count  # the stall is above the 20 ms bound
    assert next(s.value for s in lag.samples if s.name.endswith("_sum")) >= 0.04


async def test_nodes_in_one_process_keep_their_own_metrics(make_server: MakeServer) -> None:
    first, second = make_server(), make_server()
    client = await Client.open(first.url)
    loop = asyncio.get_running_loop()
    assert (await loop.run_in_executor(None, scrape, first))["rtbridge_connections"] == 1
    assert (await loop.run_in_executor(None, scrape, second))["rtbridge_connections"] == 0
    await client.close()


def test_metrics_without_prometheus_client_name_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("rtbridge.server.metrics.prometheus_client", None)
    with pytest.raises(ImproperlyConfigured, match=r"rtbridge\[server\].*metrics_path"):
        Server()


# Trusted proxies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        ("10.0.0.5", {"X-Forwarded-For": "203.0.113.7"}, "203.0.113.7"),
        # Read from the right: what the client wrote itself (left of our proxies) is not it.
        ("10.0.0.5", {"X-Forwarded-For": "1.1.1.1, 203.0.113.7, 10.0.0.9"}, "203.0.113.7"),
        ("10.0.0.5", {"X-Real-IP": "203.0.113.8"}, "203.0.113.8"),
        ("10.0.0.5", {}, "10.0.0.5"),
        ("10.0.0.5", {"X-Forwarded-For": "not-an-ip"}, "10.0.0.5"),
        ("198.51.100.1", {"X-Forwarded-For": "203.0.113.7"}, "198.51.100.1"),  # not a proxy
        ("::1", {"X-Forwarded-For": "2001:db8::1"}, "2001:db8::1"),
    ],
)
def test_trusted_proxies(peer: str, headers: dict[str, str], expected: str) -> None:
    proxies = TrustedProxies(["10.0.0.0/8", "::1"])
    assert proxies.client_address(peer, headers) == expected


def test_no_proxy_is_trusted_by_default() -> None:
    assert TrustedProxies().client_address("127.0.0.1", {"X-Forwarded-For": "6.6.6.6"}) == (
        "127.0.0.1"
    )
    with pytest.raises(ImproperlyConfigured, match="'10.0.0.300'"):
        TrustedProxies(["10.0.0.300"])


async def test_the_client_address_comes_from_a_trusted_proxy_only(
    make_server: MakeServer,
) -> None:
    headers = {"X-Forwarded-For": "203.0.113.7", "X-Real-IP": "203.0.113.7"}
    plain = make_server()
    behind_proxy = make_server(options={"trusted_proxies": ["127.0.0.1"]})
    for server, expected in ((plain, "127.0.0.1"), (behind_proxy, "203.0.113.7")):
        client = await Client.open(server.url, additional_headers=headers)
        (connection,) = server.hub.connections.values()
        assert connection.remote == expected  # type: ignore[attr-defined]
        await client.close()


# Logs -----------------------------------------------------------------------------------------


def test_json_log_lines_have_stable_keys() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("rtbridge.test.json")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.DEBUG)
    try:
        log.info(
            "rtbridge: closed %s", "a.1", extra=event("socket.closed", socket_id="a.1", code=1000)
        )
        log.warning("plain line with ünicode")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    first, second, third = (json.loads(line) for line in stream.getvalue().splitlines())
    assert list(first) == list(FIELDS)
    assert first["event"] == "socket.closed" and first["socket_id"] == "a.1"
    assert first["code"] == 1000 and first["message"] == "rtbridge: closed a.1"
    assert first["level"] == "INFO" and first["time"].endswith("+00:00")
    assert second["event"] == "log" and second["peer"] is None
    assert second["message"] == "plain line with ünicode"
    assert "ValueError: boom" in third["exc"]


def test_hostile_warnings_are_rate_limited() -> None:
    log = mock.Mock(spec=logging.Logger)
    warnings = HostileWarnings(log, per_minute=2)
    for number in range(5):
        warnings.warn(f"bad {number}", code=4400, socket_id=f"s.{number}", peer="1.2.3.4")
    assert log.warning.call_count == 2
    warnings._window_start -= 61  # a minute later
    warnings.warn("bad again", code=4400, socket_id="s.9", peer="1.2.3.4")
    assert log.warning.call_count == 3
    assert "3 similar warning(s) suppressed" in log.warning.call_args.args[1]
    assert log.warning.call_args.kwargs["extra"]["event"] == "frame.hostile"


# The token lifetime ---------------------------------------------------------------------------


def test_token_ttl_is_a_setting(settings: Any) -> None:
    assert conf.token_ttl() == 3600
    settings.RTBRIDGE_TOKEN_TTL = 60
    signed = sign_subscription("a.1", Grant("private-x", "7"))
    assert verify_subscription(signed, "a.1", "private-x").user_id == "7"
    with (
        mock.patch("time.time", return_value=time.time() + 61),
        pytest.raises(InvalidToken) as info,
    ):
        verify_subscription(signed, "a.1", "private-x")
    assert info.value.code == "expired"
    for bad in (0, -5, "60", 1.5, True):
        settings.RTBRIDGE_TOKEN_TTL = bad
        with pytest.raises(ImproperlyConfigured, match="RTBRIDGE_TOKEN_TTL"):
            conf.token_ttl()


async def test_the_server_uses_the_token_ttl(make_server: MakeServer, settings: Any) -> None:
    settings.RTBRIDGE_TOKEN_TTL = 60
    server = make_server()
    assert server.config.token_ttl == 60
    assert server.revocations._keep_for == 60
    client = await Client.open(server.url)
    with mock.patch("time.time", return_value=time.time() - 120):
        old = token(client.socket_id, "private-room")
    answer = await client.request("subscribe", channel="private-room", auth=old)
    assert answer["op"] == "error" and answer["detail"] == "expired"
    fresh = token(client.socket_id, "private-room")
    assert (await client.request("subscribe", channel="private-room", auth=fresh))["op"] == "ack"
    await client.close()
