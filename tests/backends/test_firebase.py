"""FirebaseBackend: the written value, one multi-path update, push-id order, pruning and faults."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from rtbridge.backends.firebase import PUSH_CHARS, FirebaseBackend, PushIdGenerator, push_id_time
from rtbridge.channel_names import encode_for_firebase
from rtbridge.exceptions import InvalidMessage, PublishError
from rtbridge.messages import Message
from tests.services import free_port
from tests.wire.fakes.base import Fault
from tests.wire.fakes.firebase import FakeFirebase
from tests.wire.fixtures import fake_firebase
from tests.wire.servers import NodeListener, check_js_client_drops_only_its_own_excluded_messages

__all__ = ["fake_firebase"]


@pytest.fixture
def make_backend(fake_firebase: FakeFirebase) -> Iterator[Any]:
    created: list[FirebaseBackend] = []

    def make(**options: Any) -> FirebaseBackend:
        options = {
            "database_url": fake_firebase.database_url,
            "emulator_host": fake_firebase.host,
            "retry_backoff": 0.01,
            **options,
        }
        backend = FirebaseBackend(**options)
        created.append(backend)
        return backend

    yield make
    for backend in created:
        backend.close()


def patches(server: FakeFirebase) -> list[Any]:
    return server.matching("PATCH", "/")


def old_push_id(ms: int) -> str:
    stamp = ""
    for _ in range(8):
        stamp = PUSH_CHARS[ms % 64] + stamp
        ms //= 64
    return stamp + "A" * 12


# Configuration and push ids ---------------------------------------------------------------


def test_invalid_options_are_named() -> None:
    with pytest.raises(ImproperlyConfigured, match="database_url=''"):
        FirebaseBackend()
    with pytest.raises(ImproperlyConfigured, match="root='a.b'"):
        FirebaseBackend(database_url="https://x.firebaseio.com", root="a.b")
    with pytest.raises(ImproperlyConfigured, match="keep_last=0"):
        FirebaseBackend(database_url="https://x.firebaseio.com", keep_last=0)
    with pytest.raises(ImproperlyConfigured, match="no scheme"):
        FirebaseBackend(database_url="https://x.firebaseio.com", emulator_host="http://h:1")


def test_client_config_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FIREBASE_DATABASE_EMULATOR_HOST", raising=False)
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
    secret = {"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----x"}
    backend = FirebaseBackend(
        database_url="https://p-default-rtdb.firebaseio.com", credentials=secret, api_key="AIza-k"
    )
    # apiKey and projectId: what the page's initializeApp needs to sign in (public values).
    assert backend.client_config() == {
        "backend": "firebase",
        "databaseURL": "https://p-default-rtdb.firebaseio.com",
        "root": "rtbridge",
        "apiKey": "AIza-k",
        "projectId": "p",
    }
    assert "PRIVATE" not in json.dumps(backend.client_config())


def test_push_ids_sort_in_creation_order_and_carry_the_time() -> None:
    generate = PushIdGenerator()
    ids = [generate() for _ in range(5000)]  # many share a millisecond
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert abs(push_id_time(ids[0]) - time.time() * 1000) < 1000  # type: ignore[operator]
    assert push_id_time(old_push_id(123456789)) == 123456789


def test_the_sdk_is_imported_only_when_sending() -> None:
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'tests.settings'; "
        "django.setup(); import sys, rtbridge; "
        "from rtbridge.backends.firebase import FirebaseBackend; "
        "FirebaseBackend(database_url='https://x.firebaseio.com').client_config(); "
        "print('firebase_admin' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_data_keys_the_database_refuses_are_caught_in_the_caller() -> None:
    backend = FirebaseBackend(database_url="https://x.firebaseio.com")
    with pytest.raises(InvalidMessage, match="'a.b'"):
        backend.publish(Message("c", "e", {"ok": {"a.b": 1}}))
    backend.check_message(Message("c", "e", {"url": "http://x.y/z", "n": 1.5}))  # values may


# On the wire --------------------------------------------------------------------------------


def test_the_emulator_environment_variable_is_honoured(
    fake_firebase: FakeFirebase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIREBASE_DATABASE_EMULATOR_HOST", fake_firebase.host)
    backend = FirebaseBackend(database_url=fake_firebase.database_url, mode="sync")
    try:
        backend.publish(Message("env.var", "e", 1))
        assert backend.client_config()["emulatorHost"] == fake_firebase.host
    finally:
        backend.close()
    stored = fake_firebase.get("rtbridge/env~var")
    assert [v["data"] for v in stored.values()] == [1]


def test_the_written_value_and_one_multi_path_update(
    fake_firebase: FakeFirebase, make_backend: Any
) -> None:
    backend = make_backend(batch_window=0.05)
    before = len(patches(fake_firebase))
    backend.publish(Message(["one.a", "one.b"], "created", {"id": 1}, exclude="sock-9"))
    backend.publish_many([Message("one.a", "n", i) for i in range(10)])
    backend.flush(5)
    sent = patches(fake_firebase)[before:]
    assert len(sent) == 1 and sent[0].path == "/rtbridge.json"
    body = json.loads(sent[0].body)
    assert len(body) == 12
    first = body[min(k for k in body if k.startswith("one~b/"))]
    assert first == {
        "event": "created",
        "data": {"id": 1},
        "ts": {".sv": "timestamp"},
        "exclude": "sock-9",
    }
    stored = fake_firebase.get("rtbridge/one~a")
    ordered = [stored[key] for key in sorted(stored)]
    assert [v["data"] for v in ordered] == [{"id": 1}, *range(10)]
    assert isinstance(ordered[0]["ts"], int) and abs(ordered[0]["ts"] - time.time() * 1000) < 5000
    assert "exclude" not in ordered[1]  # null is not stored


def test_the_js_sdk_receives_new_messages_in_order(
    fake_firebase: FakeFirebase, make_backend: Any
) -> None:
    backend = make_backend()
    name = "todo.item;list_id=3"
    config = {
        "databaseURL": fake_firebase.database_url,
        "host": "127.0.0.1",
        "port": fake_firebase.port,
        "root": "rtbridge",
        "channels": [[name, encode_for_firebase(name)]],
    }
    listener = NodeListener("listen_firebase.mjs", config)
    try:
        backend.publish(Message(name, "created", {"id": 1, "title": "é"}))
        backend.publish_many([Message(name, "n", i) for i in range(20)])
        backend.flush(5)
        got = listener.received(21)
    finally:
        listener.close()
    assert got[0].event == "created" and got[0].data == {"id": 1, "title": "é"}
    assert [d.data for d in got[1:]] == list(range(20))


def test_pruning_keeps_the_last_n_and_drops_old_ones(
    fake_firebase: FakeFirebase, make_backend: Any
) -> None:
    now = int(time.time() * 1000)
    # Another process's quiet channel, two hours old: only the sweep finds it.
    fake_firebase.set("rtbridge/quiet", {old_push_id(now - 7_200_000): {"event": "e"}})
    old = {old_push_id(now - 7_200_000 + i): {"event": "old", "data": i} for i in range(3)}
    fake_firebase.set("rtbridge/prune~me", old)
    backend = make_backend(mode="sync", keep_last=5, max_age=3600)
    backend.publish_many([Message("prune.me", "n", i) for i in range(12)])
    backend.prune()
    stored = fake_firebase.get("rtbridge/prune~me")
    assert [stored[k]["data"] for k in sorted(stored)] == list(range(7, 12))
    assert fake_firebase.get("rtbridge/quiet") is None


def test_pruning_runs_by_itself_in_the_dispatcher_thread(
    fake_firebase: FakeFirebase, make_backend: Any
) -> None:
    backend = make_backend(keep_last=2, prune_interval=0.2)
    backend.publish_many([Message("auto.prune", "n", i) for i in range(6)])
    backend.flush(5)
    deadline = time.monotonic() + 5
    while len(fake_firebase.get("rtbridge/auto~prune") or {}) > 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    stored = fake_firebase.get("rtbridge/auto~prune")
    assert [stored[k]["data"] for k in sorted(stored)] == [4, 5]


def test_close_deletes_the_firebase_app(make_backend: Any) -> None:
    import firebase_admin

    backend = make_backend(mode="sync")
    backend.publish(Message("c", "e", 1))
    name = backend.app_name
    assert firebase_admin.get_app(name) is not None
    backend.close()
    with pytest.raises(ValueError):
        firebase_admin.get_app(name)


# Faults -------------------------------------------------------------------------------------


def test_401_is_not_retried(fake_firebase: FakeFirebase, make_backend: Any) -> None:
    fault = fake_firebase.inject(Fault(status=401, times=10, methods=("PATCH",)))
    backend = make_backend(mode="sync")
    before = len(patches(fake_firebase))
    with pytest.raises(PublishError) as info:
        backend.publish(Message("c", "e", 1))
    assert info.value.status == 401 and "401" in str(info.value)
    assert backend.dispatcher.calls_count == 1  # the dispatcher did not retry
    # google-auth refreshes the token and tries again on 401, twice at most; that is all.
    assert len(patches(fake_firebase)) - before == 3
    fake_firebase.faults.remove(fault)


def test_503_is_retried_by_the_dispatcher_only(
    fake_firebase: FakeFirebase, make_backend: Any
) -> None:
    fake_firebase.inject(Fault(status=503, times=2, methods=("PATCH",)))
    backend = make_backend()
    before = len(patches(fake_firebase))
    backend.publish(Message("retry.fb", "e", 1))
    backend.flush(10)
    # Three requests: firebase-admin's own retries (4 more per attempt) are switched off.
    assert [r.status for r in patches(fake_firebase)[before:]] == [503, 503, 204]
    assert backend.failed_count == 0
    fake_firebase.inject(Fault(status=500, times=2, methods=("PATCH",)))
    failing = make_backend(max_attempts=2)
    failing.publish(Message("retry.fb", "e", 2))
    failing.flush(10)
    assert failing.failed_count == 1


def test_a_hanging_database_is_cut_off_by_the_timeout(
    fake_firebase: FakeFirebase, make_backend: Any
) -> None:
    fake_firebase.inject(Fault(delay=3.0, times=2, methods=("PATCH",)))
    backend = make_backend(mode="sync", timeout=0.3, max_attempts=2)
    start = time.monotonic()
    with pytest.raises(PublishError, match="unreachable"):
        backend.publish(Message("c", "e", 1))
    assert time.monotonic() - start < 2 * 0.3 + 0.8


def test_database_down_never_blocks_the_request(make_backend: Any) -> None:
    down = f"127.0.0.1:{free_port()}"
    background = make_backend(emulator_host=down, max_attempts=2, timeout=0.5)
    start = time.perf_counter()
    background.publish(Message("c", "e", 1))
    assert time.perf_counter() - start < 0.05  # not the 0.5 s+ a send would take
    background.flush(10)
    assert background.failed_count == 1


def test_the_rtbridge_js_client_drops_only_its_own_excluded_messages(
    make_backend: Any,
) -> None:
    check_js_client_drops_only_its_own_excluded_messages(make_backend())


def test_service_account_credentials_from_a_path_or_a_dict(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    monkeypatch.delenv("FIREBASE_DATABASE_EMULATOR_HOST", raising=False)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    account = {
        "type": "service_account",
        "project_id": "demo-rtbridge",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": "rtbridge@demo-rtbridge.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps(account))
    for source in (path, str(path), account):
        backend = FirebaseBackend(
            database_url="https://demo-rtbridge-default-rtdb.firebaseio.com", credentials=source
        )
        try:
            assert backend.app.credential.project_id == "demo-rtbridge"  # no network needed
            assert "PRIVATE" not in json.dumps(backend.client_config())
        finally:
            backend.close()
    with pytest.raises(ImproperlyConfigured, match="credentials=int"):
        FirebaseBackend(database_url="https://x.firebaseio.com", credentials=5)  # type: ignore[arg-type]


# Auth: custom tokens, rules and the rules command ---------------------------------------------


def _claims_of(token: str) -> dict[str, Any]:
    import base64

    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def test_member_keys_match_the_js_client() -> None:
    from rtbridge.backends.firebase import member_key

    assert member_key("7") == "7"
    assert member_key("a.b/c%d$#[x]") == "a%2Eb%2Fc%25d%24%23%5Bx%5D"


def test_auth_response_is_a_custom_token_with_the_connection_grants(
    make_backend: Any, monkeypatch: pytest.MonkeyPatch, fake_firebase: FakeFirebase
) -> None:
    from django.core.cache import cache

    from rtbridge.tokens import Grant

    cache.clear()
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", fake_firebase.host)
    backend = make_backend()
    backend.auth_response("page-1", Grant("private-todo.todolist.1", "7"))
    member = {"id": "a.b", "info": {"name": "Ann"}}
    answer = backend.auth_response("page-1", Grant("presence-todo.todoitem.2", "7", member))
    assert answer["channel"] == "presence-todo~todoitem~2"
    assert answer["channel_data"] == member
    claims = _claims_of(answer["token"])
    assert claims["uid"] == "7"
    assert claims["claims"] == {
        "rtb": {"private-todo~todolist~1": True, "presence-todo~todoitem~2": True},
        "rtm": {"presence-todo~todoitem~2": "a%2Eb"},
    }
    # Another user naming the same page gets only their own grant.
    other = backend.auth_response("page-1", Grant("private-x", "8"))
    assert _claims_of(other["token"])["claims"] == {"rtb": {"private-x": True}}


def test_claims_stay_under_firebase_limit_by_dropping_the_oldest(
    make_backend: Any, monkeypatch: pytest.MonkeyPatch, fake_firebase: FakeFirebase
) -> None:
    from django.core.cache import cache

    from rtbridge.tokens import Grant

    cache.clear()
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", fake_firebase.host)
    backend = make_backend()
    for index in range(40):
        answer = backend.auth_response("page-2", Grant(f"private-room.number.{index}", "7"))
    claims = _claims_of(answer["token"])["claims"]
    assert len(json.dumps(claims, separators=(",", ":"))) <= 1000
    assert "private-room~number~39" in claims["rtb"]
    assert "private-room~number~0" not in claims["rtb"]


def test_rules_enforce_grants_presence_owners_and_whispers() -> None:
    from rtbridge.backends.firebase import database_rules
    from tests.wire.fakes.rules import can_read, can_write

    rules = database_rules("rt")
    assert rules["rules"][".read"] is False and rules["rules"][".write"] is False
    ann = {
        "uid": "1",
        "token": {"rtb": {"private-a": True, "presence-b": True}, "rtm": {"presence-b": "1"}},
    }
    bob = {"uid": "2", "token": {"rtb": {"presence-b": True}, "rtm": {"presence-b": "2"}}}
    assert can_read(rules, ["rt", "public~channel"], None)
    assert not can_read(rules, ["rt", "private-a"], None)
    assert not can_read(rules, ["rt", "private-a"], bob)
    assert can_read(rules, ["rt", "private-a"], ann)
    assert not can_read(rules, ["rt"], ann), "listing every channel"
    assert can_read(rules, ["rt", "presence", "presence-b"], bob)
    assert not can_read(rules, ["rt", "presence", "presence-c"], bob)
    entry = {"id": "1", "info": {}, "ts": 1}
    assert can_write(rules, ["rt", "presence", "presence-b", "1", "tab"], ann, None, entry)
    assert not can_write(rules, ["rt", "presence", "presence-b", "1", "tab"], bob, None, entry)
    assert can_write(rules, ["rt", "presence", "presence-b", "1", "tab"], ann, entry, None)
    whisper = {"event": "client-typing", "data": 1}
    assert can_write(rules, ["rt", "presence-b", "-Nkey"], bob, None, whisper)
    assert not can_write(rules, ["rt", "presence-b", "-Nkey"], bob, whisper, whisper), "overwrite"
    assert not can_write(rules, ["rt", "presence-b", "-Nkey"], bob, None, {"event": "updated"})
    assert not can_write(rules, ["rt", "private-a", "-Nkey"], bob, None, whisper)
    assert not can_write(rules, ["rt", "public", "-Nkey"], ann, None, whisper)
    assert not can_write(rules, ["elsewhere"], ann, None, 1)


def test_rules_command_prints_and_writes(tmp_path: Any, settings: Any) -> None:
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    from rtbridge.backends.firebase import database_rules

    settings.RTBRIDGE_OPTIONS = {"root": "apps/rt"}
    out = StringIO()
    call_command("rtbridge_firebase_rules", stdout=out)
    assert json.loads(out.getvalue()) == database_rules("apps/rt")
    target = tmp_path / "database.rules.json"
    call_command("rtbridge_firebase_rules", output=str(target), root="x", stderr=StringIO())
    assert json.loads(target.read_text()) == database_rules("x")
    with pytest.raises(CommandError, match="root='a b' is not a valid database path"):
        call_command("rtbridge_firebase_rules", root="a b", stdout=StringIO())


def test_guard_the_sdk_session_whose_retries_rtbridge_switches_off(make_backend: Any) -> None:
    """Guard for firebase-admin: ``Reference._client.session``, the one SDK private used.

    ``FirebaseBackend.reference()`` mounts retry-free adapters on that session
    (``_disable_sdk_retries``) so only the dispatcher retries. If this fails after an SDK
    upgrade, adapt that function and the bound in pyproject.toml's ``firebase`` extra.
    """
    import requests

    ref = make_backend().reference()
    session = getattr(getattr(ref, "_client", None), "session", None)
    assert isinstance(session, requests.Session), (
        "firebase_admin.db.Reference has no _client.session any more: rtbridge cannot switch "
        "off the SDK's own retries (see rtbridge.backends.firebase._disable_sdk_retries)"
    )
    for prefix in ("http://", "https://"):
        assert session.get_adapter(prefix).max_retries.total == 0, prefix
