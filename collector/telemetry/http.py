"""A small HTTP/1.1 server on asyncio for /metrics and /health: no web framework in the
collector's process, one route table, GET only."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)
# a route answers (HTTP status, content type, body)
Route = Callable[[], Awaitable[tuple[int, str, bytes]]]
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error",
            503: "Service Unavailable"}


class TelemetryServer:
    def __init__(self, host: str, port: int, routes: dict[str, Route]) -> None:
        self.host, self.port, self.routes = host, port, routes
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        sockets = self._server.sockets
        if sockets:
            self.port = int(sockets[0].getsockname()[1])  # when started on port 0
        log.info("telemetry on http://%s:%d (%s)", self.host, self.port, ", ".join(self.routes))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, target = request.split(b" ", 2)[:2]
            path = target.decode("ascii", "replace").split("?", 1)[0]
            route = self.routes.get(path)
            if route is None:
                status, kind, body = 404, "text/plain", b"not found\n"
            elif method != b"GET":
                status, kind, body = 405, "text/plain", b"GET only\n"
            else:
                try:
                    status, kind, body = await route()
                except Exception:
                    log.exception("telemetry route %s failed", path)
                    status, kind, body = 500, "text/plain", b"internal error\n"
            head = (f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\nContent-Type: {kind}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass  # a client that does not speak HTTP (or leaves): nothing to answer
        finally:
            writer.close()
