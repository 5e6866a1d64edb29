"""Round trips per unit, counted exactly on the wire by a forwarding proxy.

Each contender gets fresh connections through :class:`CountingProxy`, a TCP listener on
127.0.0.1 that forwards to the benchmark server's unix socket.  On each connection it
counts:

- **round trips**: the times the client sends after the server has sent something, i.e.
  how often the client had to wait for an answer before it could go on (a request split
  over several writes, or an answer over several reads, is still one);
- **syncs**: the server's ``ReadyForQuery`` messages (one per simple query, per extended
  protocol ``Sync`` and per finished ``COPY``): the statements the client synchronised on,
  which is more than the round trips only when a client pipelines (``executemany``).

Both are protocol facts, independent of the client library, so the four contenders are
counted the same way.  The probe runs after the timings, with small counts, on
connections warmed first (statements prepared), so connecting is not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

_SSL_REQUEST = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")
_GSS_REQUEST = (8).to_bytes(4, "big") + (80877104).to_bytes(4, "big")
_READY = ord("Z")


@dataclass
class _Wire:
    """The server's side of one connection, parsed into messages as it passes."""

    server_spoke: bool = True  # the client's first packet counts as a round trip too
    skip_one_byte: bool = False  # the one-byte answer to an SSL/GSS request
    pending: bytearray = field(default_factory=bytearray)

    def ready_messages(self, data: bytes) -> int:
        buf = self.pending
        buf += data
        if self.skip_one_byte and buf:
            del buf[0]
            self.skip_one_byte = False
        found = at = 0
        while len(buf) - at >= 5:
            length = int.from_bytes(buf[at + 1 : at + 5], "big")
            if len(buf) - at < 1 + length:
                break
            if buf[at] == _READY:
                found += 1
            at += 1 + length
        del buf[:at]
        return found


class CountingProxy:
    """Forwards TCP connections on 127.0.0.1 to a PostgreSQL unix socket, counting.

    Args:
        socket_path: The server's socket file (``<dir>/.s.PGSQL.<port>``).
    """

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.round_trips = 0
        self.syncs = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> CountingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 5)

    def reset(self) -> None:
        self.round_trips = self.syncs = 0

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_unix_connection(self.socket_path)
        wire = _Wire()

        async def from_client() -> None:
            first = True
            while data := await client_r.read(65536):
                if first and data[:8] in (_SSL_REQUEST, _GSS_REQUEST):
                    wire.skip_one_byte = True
                first = False
                if wire.server_spoke:
                    self.round_trips += 1
                    wire.server_spoke = False
                server_w.write(data)
                await server_w.drain()
            server_w.close()

        async def from_server() -> None:
            while data := await server_r.read(65536):
                # Marked before the client can see it: its next packet is a new round trip.
                wire.server_spoke = True
                self.syncs += wire.ready_messages(data)
                client_w.write(data)
                await client_w.drain()
            client_w.close()

        with contextlib.suppress(ConnectionError, OSError):
            await asyncio.gather(from_client(), from_server())
