"""A producer process: ``producer_main.py URL PREFIX COUNT RATE`` pushes COUNT events
(ids ``PREFIX-n``, 50 users) to stream ``s`` at about RATE events/s, then prints its stats."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from mparticle_dest.streams import EventStream


async def main(url: str, prefix: str, count: int, rate: float) -> None:
    started = time.monotonic()
    async with EventStream(url, stream="s") as stream:
        for n in range(count):
            await stream.push(
                {"name": "page view", "id": f"{prefix}-{n}", "user": {"id": f"u{n % 50}"}}
            )
            ahead = n / rate - (time.monotonic() - started)
            if ahead > 0.005:
                await asyncio.sleep(ahead)
    sys.stdout.write(json.dumps({"added": stream.stats.added}) + "\n")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
