"""A WebSocket client written by hand, to send what no library sends (bad frames, odd headers)."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from dataclasses import dataclass


@dataclass
class Frame:
    """One frame from the server."""

    fin: bool
    opcode: int
    payload: bytes

    @property
    def close_code(self) -> int | None:
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    @property
    def close_reason(self) -> str:
        return self.payload[2:].decode("utf-8", "replace")


def encode_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    length: int | None = None,
) -> bytes:
    """Return a client frame; ``length`` overrides the declared payload length."""
    size = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    mask_bit = 0x80 if masked else 0
    if size < 126:
        head += bytes([mask_bit | size])
    elif size <= 0xFFFF:
        head += bytes([mask_bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", size)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def mask_fast(payload: bytes, mask: bytes) -> bytes:
    """Mask a large payload quickly (integer XOR of the whole buffer)."""
    repeated = (mask * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(payload), "big"
    )


class RawSocket:
    """An open WebSocket on asyncio streams; reads and writes frames as bytes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def handshake(
        cls,
        port: int,
        path: str = "/rtbridge/ws",
        *,
        host: str | None = None,
        origin: str | None = None,
        headers: dict[str, str] | None = None,
        receive_buffer: int | None = None,
        read_ahead: int = 1 << 24,
    ) -> tuple[int, RawSocket]:
        """Send the opening handshake; return the HTTP status and the socket.

        ``receive_buffer`` sets the kernel's receive buffer; ``read_ahead`` bounds what the
        reader takes from the kernel before the test reads it (asyncio reads up to twice it).
        """
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=read_ahead)
        if receive_buffer is not None:
            import socket

            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host or f'127.0.0.1:{port}'}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if origin is not None:
            lines.append(f"Origin: {origin}")
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        status = int(head.split(b" ", 2)[1])
        return status, cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send_text(self, text: str) -> None:
        await self.send(encode_frame(0x1, text.encode()))

    async def frame(self, timeout: float = 5.0) -> Frame:
        """Read one whole frame (raises ``IncompleteReadError`` if the stream ends inside it)."""

        async def read() -> Frame:
            first, second = await self.reader.readexactly(2)
            size = second & 0x7F
            if size == 126:
                size = struct.unpack("!H", await self.reader.readexactly(2))[0]
            elif size == 127:
                size = struct.unpack("!Q", await self.reader.readexactly(8))[0]
            assert not second & 0x80, "server frames are never masked"
            return Frame(bool(first & 0x80), first & 0x0F, await self.reader.readexactly(size))

        return await asyncio.wait_for(read(), timeout)

    async def close_frame(self, timeout: float = 5.0) -> Frame:
        """Read frames until the close frame; return it."""
        while True:
            frame = await self.frame(timeout)
            if frame.opcode == 0x8:
                return frame

    async def end(self, timeout: float = 5.0) -> str:
        """Read to the end of the TCP stream: ``"eof"`` (a clean close) or ``"reset"``."""
        try:
            while await asyncio.wait_for(self.reader.read(65536), timeout):
                pass
        except ConnectionResetError:
            return "reset"
        return "eof"

    def close(self) -> None:
        self.writer.close()
