"""The HTTP plumbing of the fake server: a threading stdlib server that can stop promptly.

The standard library's ``ThreadingHTTPServer`` is enough for a loopback test server
(no extra runtime dependency) but has two habits unfit for tests: it prints errors
to stderr and it cannot close idle keep-alive connections on shutdown. This module
tracks every connection socket and thread so :meth:`_Server.close_connections` can
end them at once.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

__all__ = ["Handler", "Server"]

logger = logging.getLogger("mparticle_dest.testing")

#: Bodies above this are answered 413 without being read (the connection is closed).
MAX_READ_BYTES = 16 * 1024 * 1024


class BodyTooLargeError(Exception):
    """The declared body is too large to read."""


class Handler(BaseHTTPRequestHandler):
    """Reads one request at a time and hands it to ``server.dispatch``."""

    server: Server
    protocol_version = "HTTP/1.1"  # keep-alive: every response carries Content-Length
    server_version = "FakeMparticle"
    sys_version = ""
    # One buffered write per response (flushed by handle_one_request) and no Nagle
    # delay, so small responses do not wait on the client's delayed ACK.
    wbufsize = -1
    disable_nagle_algorithm = True
    timeout = 60  # idle keep-alive connections end on their own after this

    def read_body(self) -> bytes:
        """Read the request body (Content-Length or chunked).

        Raises:
            BodyTooLargeError: The body is larger than ``MAX_READ_BYTES``.
        """
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_READ_BYTES:
            raise BodyTooLargeError
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # skip trailers
                return b"".join(parts)
            total += size
            if total > MAX_READ_BYTES:
                raise BodyTooLargeError
            parts.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF after each chunk

    def send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        """Write a complete response."""
        self.send_response(status)
        if body:
            self.send_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _dispatch(self) -> None:
        self.server.dispatch(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        """Send the stdlib's access/error lines to the debug log instead of stderr."""
        logger.debug("fake server: " + format, *args)  # noqa: G003 - stdlib format string


class Server(socketserver.ThreadingMixIn, HTTPServer):
    """A threading HTTP server that tracks its connections so it can close them on stop."""

    daemon_threads = True  # never keeps the interpreter alive
    block_on_close = False  # close_connections() joins the threads itself

    def __init__(self, address: tuple[str, int], dispatch: Callable[[Handler], None]) -> None:
        self.dispatch = dispatch
        self._conn_lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse-DNS lookup of the host (slow, and not needed)."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve each connection on its own tracked daemon thread."""
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name="mparticle-fake-connection",
            daemon=True,
        )
        with self._conn_lock:
            self._connections[request] = thread
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            with self._conn_lock:
                self._connections.pop(request, None)
            self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log connection errors (client went away, server stopping) instead of printing."""
        logger.debug("fake server: connection error from %s", client_address, exc_info=True)

    def close_connections(self, timeout: float) -> bool:
        """Shut down every open connection and join its thread.

        Returns:
            Whether every connection thread ended within ``timeout`` seconds.
        """
        with self._conn_lock:
            connections = list(self._connections.items())
        for sock, _ in connections:
            with contextlib.suppress(OSError):  # already closed by its own thread
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for _, thread in connections:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for _, thread in connections)
