"""Publish to the project's rtbridge server running in another process (``local`` backend)."""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Sequence

from ..exceptions import PublishError
from ..loopback_wire import (
    PATH,
    Rendezvous,
    Revocation,
    batches,
    encode_request,
    find_servers,
    withdraw,
)
from ..messages import Message

__all__ = ["send_to_servers"]

logger = logging.getLogger("rtbridge.backends")

#: Seconds to wait for a server on this machine (it answers at once unless it hangs).
TIMEOUT = 5.0


def send_to_servers(
    messages: Sequence[Message] = (), revocations: Sequence[Revocation] = ()
) -> int:
    """Send to every running server of this project; return how many got it (0: none runs).

    Raises ``PublishError`` when a server refuses the request (its answer says why) or
    stops answering. A rendezvous whose server is gone is removed and skipped.
    """
    try:
        servers = find_servers()
    except PermissionError as exc:
        raise PublishError(str(exc)) from exc
    reached = 0
    for server in servers:
        try:
            pending = revocations  # sent with the first request
            for group in batches(messages) if messages else [[]]:
                _post(server, encode_request(server.server_id, group, pending))
                pending = ()
        except ConnectionRefusedError:
            # The process that wrote the file is gone (and its pid reused), or is stopping.
            withdraw(server.file)
            continue
        reached += 1
    return reached


def _post(server: Rendezvous, body: bytes) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    where = f"the rtbridge server of this project (pid {server.pid}, 127.0.0.1:{server.port})"
    try:
        connection.request("POST", PATH, body, {"Content-Type": "application/octet-stream"})
        response = connection.getresponse()
        answer = response.read()
    except ConnectionRefusedError:
        raise
    except (OSError, http.client.HTTPException) as exc:
        raise PublishError(f"{where} did not take the message: {exc}", retryable=True) from exc
    finally:
        connection.close()
    if response.status == 204:
        return
    try:
        reason = json.loads(answer)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        reason = answer[:200].decode("utf-8", "replace") or response.reason
    raise PublishError(f"{where} refused the message: {reason}", status=response.status)
