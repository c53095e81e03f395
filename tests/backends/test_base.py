"""BaseBackend's optional features: a backend that lacks one says so and names the fix."""

from __future__ import annotations

import pytest

from rtbridge.backends.base import BaseBackend, SelfHostedAuthMixin
from rtbridge.backends.locmem import LocMemBackend
from rtbridge.exceptions import NotSupported
from rtbridge.messages import Message
from rtbridge.tokens import Grant, verify_subscription


class HostedBackend(BaseBackend):
    """A hosted transport that forgot to implement its auth answer."""

    alias = "hosted"

    def publish(self, message: Message) -> None:
        pass


class ServerBackend(SelfHostedAuthMixin, BaseBackend):
    alias = "server"

    def publish(self, message: Message) -> None:
        pass


def test_a_backend_without_an_auth_answer_refuses_to_sign_the_servers_token() -> None:
    with pytest.raises(NotSupported, match=r"HostedBackend .* auth_response\(socket_id, grant\)"):
        HostedBackend().auth_response("1.2", Grant("private-a", "7"))
    with pytest.raises(NotImplementedError, match="SelfHostedAuthMixin"):
        HostedBackend().auth_response("1.2", Grant("private-a", "7"))


def test_revoke_is_not_supported_by_default() -> None:
    with pytest.raises(NotSupported, match="HostedBackend cannot revoke a live subscription"):
        HostedBackend().revoke("7", "private-a")


@pytest.mark.parametrize("backend_type", [ServerBackend, LocMemBackend])
def test_self_hosted_auth_answer_is_the_servers_signed_token(
    backend_type: type[BaseBackend],
) -> None:
    member = {"id": "7", "info": {"name": "Ann"}}
    answer = backend_type().auth_response("1.2", Grant("presence-room", "7", member))
    assert answer["channel_data"] == member
    assert verify_subscription(answer["auth"], "1.2", "presence-room") == Grant(
        "presence-room", "7", member
    )
    plain = backend_type().auth_response("1.2", Grant("private-a", "7"))
    assert set(plain) == {"auth"}
