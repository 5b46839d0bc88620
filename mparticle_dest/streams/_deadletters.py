"""Dead letters: what failed for good, kept with everything needed to deliver it later.

One dead-letter entry per failed batch (or per event that could not be mapped), with
``reason`` (``rejected``, ``authentication``, ``invalid``), ``status`` (the last HTTP
status, empty when none), ``error``, ``source_request_id``, ``body`` (the batch JSON
as sent, empty for ``invalid``) and ``events`` (a JSON list of the original entries'
events). The entries are acknowledged and deleted in the same transaction that writes
the dead letter, so an entry is either pending in the stream or dead-lettered.
``replay`` appends the events back to the stream (ids and timestamps kept) for the
relays to map and deliver afresh: after a config fix, or once mParticle accepts them.
"""

from __future__ import annotations

import orjson

from ._redis import Client, Keys, Pipeline, call, text
from ._scripts import ACK

__all__ = ["acknowledge", "dead_letter", "replay"]


def _clear(pipe: Pipeline, keys: Keys, group: str, entries: list[bytes], srids: list[str]) -> None:
    """Queue on ``pipe``: acknowledge and delete ``entries``, and forget their records."""
    execute = pipe.execute_command
    execute("XACK", keys.stream, group, *entries)
    execute("XDEL", keys.stream, *entries)
    execute("HDEL", keys.ledger, *entries)
    if srids:
        execute("DEL", *(keys.batch(srid) for srid in srids))


async def acknowledge(
    client: Client, keys: Keys, group: str, entries: list[bytes], srids: list[str] | None = None
) -> None:
    """Final success (or skip): acknowledge, delete, and clear the records, atomically."""
    if entries:
        await ACK(
            client,
            [keys.stream, keys.ledger],
            [group, b",".join(entries), keys.batch_prefix, *(srids or ())],
        )


async def dead_letter(
    client: Client,
    keys: Keys,
    group: str,
    entries: list[bytes],
    *,
    reason: str,
    status: int | None,
    error: str,
    srid: str | None,
    body: bytes,
) -> None:
    """Write one dead letter for ``entries`` and acknowledge them, atomically."""
    pipe = client.pipeline(transaction=False)
    for entry in entries:
        pipe.execute_command("XRANGE", keys.stream, entry, entry)
    events: list[object] = []
    for reply in await pipe.execute():
        for _entry_id, fields in reply or ():
            payload = fields.get(b"e")
            try:
                events.append(orjson.loads(payload) if payload is not None else None)
            except orjson.JSONDecodeError:
                events.append(text(payload))
    tx = client.pipeline(transaction=True)
    tx.execute_command(
        "XADD",
        keys.dead,
        "*",
        "reason",
        reason,
        "status",
        "" if status is None else str(status),
        "error",
        error,
        "source_request_id",
        srid or "",
        "body",
        body,
        "entries",
        orjson.dumps([text(entry) for entry in entries]),
        "events",
        orjson.dumps(events),
    )
    _clear(tx, keys, group, entries, [srid] if srid else [])
    await tx.execute()


async def replay(client: Client, keys: Keys, *, count: int | None = None) -> tuple[int, int]:
    """Move dead letters back: each one's events are appended to the stream again.

    Returns:
        ``(dead letters replayed, events appended)``.
    """
    letters = await call(
        client, "XRANGE", keys.dead, "-", "+", *(("COUNT", count) if count else ())
    )
    replayed = appended = 0
    for letter_id, fields in letters:
        events = [e for e in orjson.loads(fields.get(b"events", b"[]")) if isinstance(e, dict)]
        tx = client.pipeline(transaction=True)
        for event in events:
            tx.execute_command("XADD", keys.stream, "*", "e", orjson.dumps(event))
        tx.execute_command("XDEL", keys.dead, letter_id)
        await tx.execute()
        replayed += 1
        appended += len(events)
    return replayed, appended
