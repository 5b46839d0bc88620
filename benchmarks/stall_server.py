"""A loopback HTTP/1.1 server that holds every request until told to answer.

Run as ``python -m benchmarks.stall_server``: it prints its base URL on the first
stdout line, reads requests (keep-alive, ``Content-Length`` bodies) and leaves them
unanswered, so a client keeps its events buffered. A ``release`` line on stdin
answers every held request with ``202 Accepted`` and every later one at once.
SIGINT or the end of stdin stops it; it then prints ``{"requests": N}``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

_RESPONSE = (
    b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
)


class _Stall:
    def __init__(self) -> None:
        self.released = asyncio.Event()
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                self.requests += 1
                await self.released.wait()
                writer.write(_RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _main() -> None:
    stall = _Stall()
    server = await asyncio.start_server(stall.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{port}", flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGINT, stop.set)

    async def control() -> None:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            if line.strip() == "release":
                stall.released.set()
        stop.set()

    reader = asyncio.create_task(control())
    await stop.wait()
    reader.cancel()
    server.close()
    print(json.dumps({"requests": stall.requests}), flush=True)


if __name__ == "__main__":
    asyncio.run(_main())
