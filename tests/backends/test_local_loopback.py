"""``local`` from another process of the project: the loopback channel, and no server at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.devproject import DevProject

NO_SERVER_SESSION = """
import logging
logging.basicConfig(format="LOG %(levelname)s %(name)s: %(message)s")
from notes.models import Note
for n in range(3):
    Note.objects.create(text=f"saved {n}")
print("saved", Note.objects.count())
import rtbridge
try:
    rtbridge.publish("notes.note", "ping", {})
except rtbridge.PublishError as exc:
    print("RAISED", type(exc).__name__, exc)
"""


@pytest.fixture
def project(tmp_path: Path) -> DevProject:
    project = DevProject(tmp_path)
    project.manage("migrate", "-v0")
    return project


def test_saves_with_no_server_warn_once_and_publish_raises(project: DevProject) -> None:
    output = project.manage("shell", "-c", NO_SERVER_SESSION)
    assert "saved 3" in output
    warnings = [line for line in output.splitlines() if line.startswith("LOG ")]
    assert len(warnings) == 1, output
    assert warnings[0].startswith(
        "LOG WARNING rtbridge.publishers: rtbridge: model changes are saved"
    )
    assert "python manage.py runserver" in warnings[0]
    assert "Traceback" not in output
    assert "RAISED ServerNotRunning RTBRIDGE_BACKEND='local' delivers to this project's" in output


def test_a_command_publishes_to_the_running_server(project: DevProject) -> None:
    import asyncio
    import json

    from websockets.asyncio.client import connect

    server = project.start("runserver", "--noreload")
    try:
        server.wait_for_output("rtbridge socket at")

        async def receive() -> list[dict[str, object]]:
            async with connect(f"ws://127.0.0.1:{server.port}/rtbridge/ws") as socket:
                await socket.recv()  # welcome
                await socket.send(json.dumps({"op": "subscribe", "id": 1, "channel": "notes.note"}))
                assert json.loads(await socket.recv())["op"] == "ack"
                code = (
                    "import rtbridge; from notes.models import Note; "
                    "Note.objects.create(text='x'); rtbridge.publish('notes.note', 'ping', {'n': 1})"
                )
                await asyncio.to_thread(project.manage, "shell", "-c", code)
                messages: list[dict[str, object]] = []
                while len(messages) < 2:
                    # A heartbeat may come in between (the first is due within an interval
                    # of the welcome, at any moment: docs/protocol.md).
                    frame = json.loads(await asyncio.wait_for(socket.recv(), 5))
                    if frame["op"] == "message":
                        messages.append(frame)
                return messages

        frames = asyncio.run(receive())
        assert [(f["event"], f["data"]) for f in frames] == [
            ("created", {"id": 1, "text": "x"}),
            ("ping", {"n": 1}),
        ]
    finally:
        server.stop()


def test_another_project_on_the_machine_never_receives(
    project: DevProject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = DevProject(tmp_path_factory.mktemp("other"))
    other.manage("migrate", "-v0")
    server = project.start("runserver", "--noreload")
    try:
        server.wait_for_output("rtbridge socket at")
        output = other.manage("shell", "-c", NO_SERVER_SESSION)
        assert "RAISED ServerNotRunning" in output
    finally:
        server.stop()
