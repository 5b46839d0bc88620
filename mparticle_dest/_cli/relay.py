"""``mparticle-dest relay``: run a relay, show a stream's status, replay dead letters.

``relay`` (no subcommand) delivers a Redis stream to mParticle until SIGTERM/SIGINT,
then drains within ``--close-timeout``; what is left stays pending for another relay.
It runs on asyncio. Needs the ``redis`` extra (``pip install 'mparticle-dest[redis]'``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import signal
from pathlib import Path
from typing import Any

import click
from attrs import asdict

from .._exceptions import ConfigError
from .config import build_config, read_config_dict

__all__ = ["relay"]

ENV_REDIS_URL = "MPARTICLE_DEST_REDIS_URL"
_DEFAULT_REDIS = "redis://localhost:6379/0"

_redis_option = click.option(
    "--redis",
    "redis_url",
    envvar=ENV_REDIS_URL,
    default=_DEFAULT_REDIS,
    show_default=True,
    metavar="URL",
    help=f"The Redis server (also {ENV_REDIS_URL}).",
)
_stream_option = click.option(
    "--stream", default="mparticle", show_default=True, help="The stream the producers append to."
)
_group_option = click.option(
    "--group", default="mparticle-relays", show_default=True, help="The relays' consumer group."
)


def _err(text: str) -> None:
    click.echo(text, err=True)


def _import_streams() -> Any:
    try:
        from .. import streams
    except ImportError as exc:
        raise click.ClickException(str(exc)) from None
    return streams


@click.group(invoke_without_command=True)
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A destination config (JSON), or a walkerOS flow.json holding it (as for send).",
)
@click.option("--destination", "-d", metavar="NAME", help="Destination name in a flow.json.")
@click.option("--flow", metavar="NAME", help="Flow name in a multi-flow file.")
@_redis_option
@_stream_option
@_group_option
@click.option("--consumer", metavar="NAME", help="This relay's name (default: <host>-<pid>).")
@click.option(
    "--claim-idle",
    type=click.FloatRange(min=0.001),
    default=60.0,
    show_default=True,
    help="Seconds before another relay's idle entries are claimed.",
)
@click.option(
    "--batches-per-second",
    type=click.FloatRange(min=0.001),
    help="A rate shared by every relay through a Redis token bucket.",
)
@click.option("--quota-key", metavar="KEY", help="The token bucket's key (one per workspace).")
@click.option("--base-url", metavar="URL", help="Send to this base URL instead of the pod's host.")
@click.option(
    "--close-timeout",
    type=click.FloatRange(min=0.001),
    default=10.0,
    show_default=True,
    help="Seconds to drain on SIGTERM/SIGINT.",
)
@click.option(
    "--max-buffered-events",
    type=click.IntRange(min=1),
    help="Events a relay holds in memory at most (reading stops at the cap).",
)
@click.pass_context
def relay(
    ctx: click.Context,
    config_path: Path | None,
    destination: str | None,
    flow: str | None,
    redis_url: str,
    stream: str,
    group: str,
    consumer: str | None,
    claim_idle: float,
    batches_per_second: float | None,
    quota_key: str | None,
    base_url: str | None,
    close_timeout: float,
    max_buffered_events: int | None,
) -> None:
    """Deliver a Redis stream's events to mParticle as one relay of a consumer group.

    Runs until SIGTERM or SIGINT, then drains; prints its counters as one JSON line.
    """
    if ctx.invoked_subcommand is not None:
        return
    if config_path is None:
        raise click.UsageError("--config is required to run a relay")
    try:
        raw, _source = read_config_dict(config_path, destination=destination, flow=flow)
        config = build_config(raw)
    except ConfigError as exc:
        _err(f"mparticle-dest: invalid config in {config_path}:")
        for problem in exc.problems:
            _err(f"  {problem}")
        ctx.exit(2)
    streams = _import_streams()
    options: dict[str, Any] = {"close_timeout": close_timeout}
    if base_url is not None:
        options["base_url"] = base_url
    if max_buffered_events is not None:
        options["max_buffered_events"] = max_buffered_events
    if quota_key is not None:
        options["quota_key"] = quota_key
    worker = streams.Relay(
        config,
        redis_url,
        stream=stream,
        group=group,
        consumer=consumer,
        claim_idle=claim_idle,
        batches_per_second=batches_per_second,
        **options,
    )
    logging.basicConfig(
        level=os.environ.get("MPARTICLE_DEST_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    stats = asyncio.run(_run_relay(worker))
    click.echo(json.dumps(_jsonable(stats)))


async def _run_relay(worker: Any) -> Any:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    _err(f"mparticle-dest relay {worker.consumer}: reading {worker.keys.stream!r}")
    return await worker.run()


def _jsonable(stats: Any) -> dict[str, Any]:
    out = asdict(stats, recurse=False)
    dest = out.pop("destination")
    out["destination"] = None if dest is None else asdict(dest, value_serializer=_plain)
    return out


def _plain(_inst: Any, _field: Any, value: Any) -> Any:
    return dict(value) if hasattr(value, "items") else value


@relay.command()
@_redis_option
@_stream_option
@_group_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def status(redis_url: str, stream: str, group: str, as_json: bool) -> None:
    """Stream length, pending entries per relay, lag and dead letters."""
    streams = _import_streams()
    keys = streams.Keys.of(stream)
    report = asyncio.run(_with_client(streams, redis_url, streams.stream_status, keys, group))
    if as_json:
        click.echo(json.dumps(report.to_json()))
        return
    click.echo(f"stream {stream!r}: {report.length} undelivered, lag {report.lag:.1f} s")
    click.echo(f"dead letters ({keys.dead!r}): {report.dead_letters}")
    if not report.group_exists:
        click.echo(f"group {group!r}: not created yet (no relay has run)")
        return
    click.echo(f"group {group!r}: {report.pending} pending")
    for consumer in report.consumers:
        click.echo(f"  {consumer.name}: {consumer.pending} pending, idle {consumer.idle:.1f} s")


@relay.command("replay-dead")
@_redis_option
@_stream_option
@click.option("--count", type=click.IntRange(min=1), help="Replay at most this many dead letters.")
def replay_dead(redis_url: str, stream: str, count: int | None) -> None:
    """Append the dead letters' events to the stream again (after a fix), oldest first."""
    streams = _import_streams()
    keys = streams.Keys.of(stream)
    letters, events = asyncio.run(
        _with_client(streams, redis_url, functools.partial(streams.replay, count=count), keys)
    )
    click.echo(f"replayed {letters} dead letters: {events} events appended to {stream!r}")


async def _with_client(streams: Any, url: str, func: Any, *args: Any) -> Any:
    client = streams.connect(url)
    try:
        return await func(client, *args)
    finally:
        await client.aclose()
