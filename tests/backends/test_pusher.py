"""PusherBackend: chunking to Pusher's limits, delivery through soketi to pusher-js, and faults."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from rtbridge.backends.pusher import PusherBackend
from rtbridge.channel_names import encode_for_pusher
from rtbridge.exceptions import InvalidMessage, PayloadTooLarge, PublishError
from rtbridge.messages import Message
from tests.services import free_port
from tests.wire.fakes.base import Fault
from tests.wire.fakes.pusher import FakePusherAPI
from tests.wire.fixtures import fake_pusher_api, soketi
from tests.wire.servers import PUSHER_APP, NodeListener, Soketi

__all__ = ["fake_pusher_api", "soketi"]


@pytest.fixture
def make_backend() -> Iterator[Any]:
    created: list[PusherBackend] = []

    def make(**options: Any) -> PusherBackend:
        options.setdefault("retry_backoff", 0.01)
        backend = PusherBackend(**options)
        created.append(backend)
        return backend

    yield make
    for backend in created:
        backend.close()


def listen(server: Soketi, *channels: str) -> NodeListener:
    config = {
        "key": PUSHER_APP["key"],
        "wsHost": "127.0.0.1",
        "wsPort": server.port,
        "channels": [[name, encode_for_pusher(name)] for name in channels],
    }
    return NodeListener("listen_pusher.mjs", config)


# Configuration -----------------------------------------------------------------------------


def test_missing_and_invalid_options_are_named() -> None:
    with pytest.raises(ImproperlyConfigured, match="secret"):
        PusherBackend(app_id="1", key="k")
    with pytest.raises(ImproperlyConfigured, match="app_id='app-1'.*numeric"):
        PusherBackend(app_id="app-1", key="k", secret="s")
    with pytest.raises(ImproperlyConfigured, match="cluster='eu' and host="):
        PusherBackend(app_id="1", key="k", secret="s", cluster="eu", host="h")


def test_client_config_never_contains_the_secret() -> None:
    hosted = PusherBackend(app_id="1", key="k", secret="s3cret", cluster="eu")
    # signIn: pages sign in as their user (through the auth endpoint), so revoke() reaches them.
    assert hosted.client_config() == {
        "backend": "pusher",
        "key": "k",
        "cluster": "eu",
        "signIn": True,
    }
    own = PusherBackend(app_id="1", key="k", secret="s3cret", host="ws.example", port=6001)
    assert own.client_config() == {
        "backend": "pusher",
        "key": "k",
        "cluster": "mt1",
        "signIn": True,
        "wsHost": "ws.example",
        "wsPort": 6001,
        "forceTLS": True,
    }
    assert "s3cret" not in json.dumps(own.client_config())


def test_the_sdk_is_imported_only_when_sending() -> None:
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'tests.settings'; "
        "django.setup(); import sys, rtbridge; "
        "from rtbridge.backends.pusher import PusherBackend; "
        "PusherBackend(app_id='1', key='k', secret='s').client_config(); "
        "print('pusher' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_exclude_must_be_a_pusher_socket_id() -> None:
    backend = PusherBackend(app_id="1", key="k", secret="s")
    with pytest.raises(InvalidMessage, match="'abc' is not a Pusher socket id"):
        backend.publish(Message("c", "e", exclude="abc"))


# Chunking (requests are built without I/O) --------------------------------------------------


def test_single_channel_messages_become_batches_of_ten() -> None:
    backend = PusherBackend(app_id="1", key="k", secret="s")
    calls = backend.build_calls([Message("c", "e", i) for i in range(25)])
    assert [c.label for c in calls] == [
        "trigger_batch(10 events)",
        "trigger_batch(10 events)",
        "trigger_batch(5 events)",
    ]


def test_many_channels_become_triggers_of_a_hundred_in_order() -> None:
    backend = PusherBackend(app_id="1", key="k", secret="s")
    wide = Message([f"c{i}" for i in range(250)], "wide", 1)
    calls = backend.build_calls([Message("a", "e", 0), wide, Message(["b1", "b2"], "e", 2)])
    assert [c.label for c in calls] == [
        "trigger_batch(1 events)",
        "trigger(100 channels)",
        "trigger(100 channels)",
        "trigger(50 channels)",
        "trigger_batch(2 events)",
    ]


# On the wire: soketi --------------------------------------------------------------------------


def test_delivers_to_pusher_js_in_order(soketi: Soketi, make_backend: Any) -> None:
    backend = make_backend(**soketi.options)
    listener = listen(soketi, "todo.item;list_id=1")
    try:
        backend.publish(Message("todo.item;list_id=1", "created", {"id": 1, "title": "é"}))
        backend.publish_many([Message("todo.item;list_id=1", "n", i) for i in range(30)])
        backend.flush(5)
        got = listener.received(31)
    finally:
        listener.close()
    assert got[0].event == "created" and got[0].data == {"id": 1, "title": "é"}
    assert [d.data for d in got[1:]] == list(range(30))
    assert backend.dispatcher.calls_count <= 5  # batched, not 31 requests


def test_one_message_on_150_channels_reaches_the_first_and_last(
    soketi: Soketi, make_backend: Any
) -> None:
    channels = [f"wide.{i}" for i in range(150)]
    backend = make_backend(**soketi.options, mode="sync")
    listener = listen(soketi, channels[0], channels[-1])
    try:
        backend.publish(Message(channels, "wide", {"n": 150}))  # soketi refuses > 100 per call
        got = listener.received(2)
    finally:
        listener.close()
    assert sorted(d.channel for d in got) == [channels[0], channels[-1]]
    assert backend.dispatcher.calls_count == 2


def test_exclude_skips_only_that_socket(soketi: Soketi, make_backend: Any) -> None:
    backend = make_backend(**soketi.options)
    sender, other = listen(soketi, "room"), listen(soketi, "room")
    try:
        backend.publish(Message("room", "said", "hi", exclude=sender.socket_id))
        backend.publish(Message("room", "said", "all"))
        backend.flush(5)
        assert [d.data for d in other.received(2)] == ["hi", "all"]
        assert [d.data for d in sender.received(1)] == ["all"]
    finally:
        sender.close()
        other.close()


def test_payload_at_the_limit_is_delivered_and_over_it_refused_before_sending(
    soketi: Soketi, make_backend: Any
) -> None:
    backend = make_backend(**soketi.options, mode="sync")
    listener = listen(soketi, "big")
    try:
        biggest = "x" * (10240 - 2)  # the JSON string's quotes make it 10240 bytes
        backend.publish(Message("big", "e", biggest))
        assert listener.received(1)[0].data == biggest
        with pytest.raises(PayloadTooLarge):
            backend.publish(Message("big", "e", biggest + "x"))
    finally:
        listener.close()
    assert backend.dispatcher.calls_count == 1


def test_text_with_an_emoji_near_the_limit_is_delivered(soketi: Soketi, make_backend: Any) -> None:
    # sys.getsizeof() of such a str is ~4x its UTF-8 size; the SDK's own checks would refuse it.
    text = "x" * 9000 + "\N{GRINNING FACE}"
    channels = [f"emoji.{i}" for i in range(12)]
    backend = make_backend(**soketi.options, mode="sync")
    listener = listen(soketi, "emoji.0", "emoji.11")
    try:
        backend.publish(Message(channels, "e", text))
        got = listener.received(2)
    finally:
        listener.close()
    assert [d.data for d in got] == [text, text]


# Faults -------------------------------------------------------------------------------------


def test_bad_secret_is_a_401_without_retry(soketi: Soketi, make_backend: Any) -> None:
    options = {**soketi.options, "secret": "wrong"}
    backend = make_backend(**options, mode="sync")
    with pytest.raises(PublishError) as info:
        backend.publish(Message("c", "e", 1))
    assert info.value.status == 401 and "401" in str(info.value)
    assert backend.dispatcher.calls_count == 1
    background = make_backend(**options)
    background.publish(Message("c", "e", 1))
    background.flush(5)
    assert background.failed_count == 1 and background.dispatcher.calls_count == 1


def _api_options(server: FakePusherAPI) -> dict[str, Any]:
    return {**PUSHER_APP, "host": "127.0.0.1", "port": server.port, "ssl": False}


def test_5xx_is_retried_then_delivered(fake_pusher_api: FakePusherAPI, make_backend: Any) -> None:
    fake_pusher_api.inject(Fault(status=503, times=2))
    backend = make_backend(**_api_options(fake_pusher_api))
    backend.publish(Message("c", "e", 1))
    backend.flush(5)
    assert [r.status for r in fake_pusher_api.requests] == [503, 503, 200]
    assert backend.failed_count == 0


def test_5xx_until_attempts_run_out(fake_pusher_api: FakePusherAPI, make_backend: Any) -> None:
    fake_pusher_api.inject(Fault(status=500, times=100))
    sync = make_backend(**_api_options(fake_pusher_api), mode="sync", max_attempts=3)
    with pytest.raises(PublishError) as info:
        sync.publish(Message("c", "e", 1))
    assert info.value.status == 500 and info.value.retryable
    assert len(fake_pusher_api.requests) == 3
    background = make_backend(**_api_options(fake_pusher_api), max_attempts=2)
    background.publish(Message("c", "e", 1))
    background.flush(5)
    assert background.failed_count == 1
    assert len(fake_pusher_api.requests) == 5


def test_a_hanging_server_costs_at_most_attempts_times_timeout(
    fake_pusher_api: FakePusherAPI, make_backend: Any
) -> None:
    fake_pusher_api.inject(Fault(delay=3.0, times=2))
    backend = make_backend(
        **_api_options(fake_pusher_api), mode="sync", timeout=0.3, max_attempts=2
    )
    start = time.monotonic()
    with pytest.raises(PublishError, match="unreachable") as info:
        backend.publish(Message("c", "e", 1))
    assert info.value.retryable
    assert time.monotonic() - start < 2 * 0.3 + 0.5


def test_server_down_never_blocks_the_request(make_backend: Any) -> None:
    options = {**PUSHER_APP, "host": "127.0.0.1", "port": free_port(), "ssl": False}
    background = make_backend(**options, timeout=0.5, max_attempts=2)
    start = time.perf_counter()
    background.publish(Message("c", "e", 1))
    assert time.perf_counter() - start < 0.05  # not the 0.5 s+ a send would take
    background.flush(5)
    assert background.failed_count == 1
    sync = make_backend(**options, mode="sync", timeout=0.5, max_attempts=2)
    start = time.monotonic()
    with pytest.raises(PublishError, match="unreachable"):
        sync.publish(Message("c", "e", 1))
    assert time.monotonic() - start < 2 * 0.5 + 0.5


# Channel authorization -------------------------------------------------------------------------


def _signature(secret: str, text: str) -> str:
    import hashlib
    import hmac

    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def test_auth_response_signs_socket_and_encoded_channel(make_backend: Any) -> None:
    from rtbridge.tokens import Grant

    backend = make_backend(**PUSHER_APP)
    answer = backend.auth_response("123.456", Grant("private-todo.todolist.1", "7"))
    expected = _signature(PUSHER_APP["secret"], "123.456:private-todo.todolist.1")
    assert answer == {"auth": f"{PUSHER_APP['key']}:{expected}"}


def test_auth_response_on_presence_signs_the_member(make_backend: Any) -> None:
    from rtbridge.tokens import Grant

    backend = make_backend(**PUSHER_APP)
    member = {"id": "7", "info": {"name": "Ann"}}
    answer = backend.auth_response("1.2", Grant("presence-room", "7", member))
    assert json.loads(answer["channel_data"]) == {"user_id": "7", "user_info": {"name": "Ann"}}
    text = f"1.2:presence-room:{answer['channel_data']}"
    assert answer["auth"] == f"{PUSHER_APP['key']}:{_signature(PUSHER_APP['secret'], text)}"


def test_auth_response_refuses_a_socket_id_pusher_would_not_issue(make_backend: Any) -> None:
    from rtbridge.tokens import Grant

    backend = make_backend(**PUSHER_APP)
    with pytest.raises(ValueError, match="socket_id='abc'.*'123.456'"):
        backend.auth_response("abc", Grant("private-room", "7"))


def test_auth_response_refuses_encrypted_channels(make_backend: Any) -> None:
    from rtbridge.tokens import Grant

    backend = make_backend(**PUSHER_APP)
    with pytest.raises(ValueError, match="'private-encrypted-room'.*reserves.*not support"):
        backend.auth_response("1.2", Grant("private-encrypted-room", "7"))


def test_cache_and_encrypted_prefixes_are_refused(make_backend: Any) -> None:
    from rtbridge.exceptions import InvalidChannelName

    backend = make_backend(**PUSHER_APP, mode="sync")
    for name in ("cache-news", "private-cache-room", "presence-cache-room"):
        with pytest.raises(InvalidChannelName, match="reserves"):
            backend.publish(Message(["ok", name], "e", 1))


def test_413_from_a_server_that_really_answers_it_is_payload_refused(
    fake_pusher_api: Any, make_backend: Any
) -> None:
    from rtbridge.exceptions import PayloadRefused

    backend = make_backend(**_api_options(fake_pusher_api), mode="sync")
    for status, error in ((413, PayloadRefused), (400, PublishError), (401, PublishError)):
        fake_pusher_api.inject(Fault(status=status, path_prefix="/apps/"))
        with pytest.raises(error, match=f"answered {status}") as info:
            backend.publish(Message("c", "e", 1))
        assert info.value.status == status and not info.value.retryable
    fake_pusher_api.inject(Fault(status=403, path_prefix="/apps/", body='{"error": "quota"}'))
    with pytest.raises(PublishError, match="403.*enabled") as forbidden:
        backend.publish(Message("c", "e", 1))
    assert forbidden.value.status == 403


def test_guard_sdk_http_adapters_come_from_our_backend_hook_and_close_releases_them(
    fake_pusher_api: FakePusherAPI, make_backend: Any
) -> None:
    """Guard for pusher-http-python: ``Pusher(backend=...)`` builds every HTTP adapter.

    ``PusherBackend.close()`` releases the sessions of the adapters it built through that hook
    (``PusherBackend._http_adapter``). If this fails after an SDK upgrade, the SDK changed how it
    builds adapters: adapt ``_http_adapter`` and the bound in pyproject.toml's ``pusher`` extra.
    """
    backend = make_backend(**_api_options(fake_pusher_api), mode="sync")
    backend.publish(Message("c", "e", 1))
    assert backend._sessions, (
        "pusher.Pusher did not call its backend= hook: PusherBackend.close() can no longer "
        "release the SDK's HTTP sessions (see PusherBackend._http_adapter)"
    )
    pools = [
        adapter.poolmanager.pools
        for session in backend._sessions
        for adapter in session.adapters.values()
    ]
    assert any(len(pool) for pool in pools), "the SDK sent through a session it did not build"
    backend.close()
    assert not any(len(pool) for pool in pools), "close() left connections open"


def test_guard_the_sdks_terminate_path_lacks_the_apps_prefix() -> None:
    """Guard for pusher-http-python: its ``terminate_user_connections`` path is wrong.

    It posts ``/users/<id>/terminate_connections``; Pusher's HTTP API (and soketi, and the Node
    SDK) serve ``/apps/<app_id>/users/<id>/terminate_connections``, so ``PusherBackend.revoke``
    builds that request itself (``_terminate_user_connections``). When this fails, the SDK has
    fixed its path: call ``terminate_user_connections`` again and drop the workaround.
    """
    import pusher

    client = pusher.Pusher(app_id="1", key="k", secret="s")
    request = client._pusher_client.terminate_user_connections.make_request("ann")
    assert request.path == "/users/ann/terminate_connections"
    assert client._pusher_client.app_id == "1" and client._pusher_client.http is not None


def test_revoke_posts_the_documented_path_signed(
    fake_pusher_api: FakePusherAPI, make_backend: Any
) -> None:
    backend = make_backend(**_api_options(fake_pusher_api), mode="sync")
    backend.revoke("ann", "private-room")
    (request,) = fake_pusher_api.requests
    assert request.method == "POST"
    assert request.path == f"/apps/{PUSHER_APP['app_id']}/users/ann/terminate_connections"
    assert {"auth_key", "auth_signature", "auth_timestamp", "body_md5"} <= set(
        urllib.parse.parse_qs(request.query)
    )
    with pytest.raises(PublishError, match="User id is empty"):
        backend.revoke("", "private-room")


@pytest.fixture
def test_ca(tmp_path: Any) -> dict[str, str]:
    """A CA of the test's own and a certificate for 127.0.0.1 it signed (openssl)."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp_path)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=rtbridge test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    )
    (tmp_path / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    )
    return {name: str(tmp_path / f"{name}.pem") for name in ("ca", "server")} | {
        "key": str(tmp_path / "server.key")
    }


def test_ca_bundle_verifies_the_api_with_the_given_cas(
    test_ca: dict[str, str], make_backend: Any
) -> None:
    """The SDK pins its own cacert.pem (REQUESTS_CA_BUNDLE is ignored); ``ca_bundle`` wins."""
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(test_ca["server"], test_ca["key"])
    server = FakePusherAPI(ssl_context=context)
    server.start()
    try:
        options = {**PUSHER_APP, "host": "127.0.0.1", "port": server.port, "ssl": True}
        refused = make_backend(**options, mode="sync", max_attempts=1)
        with pytest.raises(PublishError, match="CERTIFICATE_VERIFY_FAILED|certificate verify"):
            refused.publish(Message("c", "e", 1))
        trusted = make_backend(**options, mode="sync", ca_bundle=test_ca["ca"])
        trusted.publish(Message("c", "e", 2))
        assert [r.path for r in server.requests][-1] == f"/apps/{PUSHER_APP['app_id']}/batch_events"
    finally:
        server.stop()


def test_ca_bundle_must_be_a_file() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"ca_bundle='/nope.pem' is not a file; give"):
        PusherBackend(**PUSHER_APP, ca_bundle="/nope.pem")
