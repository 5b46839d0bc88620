"""The ``mparticle-dest`` command: ``demo``, ``send``, ``validate`` and ``relay``.

Exit status: 0 when everything succeeded, 1 when some events were rejected or not
delivered (or, for ``validate``, the config has problems), 2 for usage and config
errors, 128 + the signal number when SIGINT or SIGTERM stopped ``send``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from .._exceptions import ConfigError
from .._version import __version__
from .config import ENV_API_KEY, ENV_API_SECRET, build_config, read_config_dict
from .relay import relay as relay_group

__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "EXIT_OK", "cli", "run"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


def _base_url(value: str | None) -> str | None:
    """Check ``--base-url`` as ``Destination`` would, as a usage error (exit 2)."""
    from .._wire import check_base_url

    if value is None:
        return None
    try:
        return check_base_url(value)
    except ValueError as exc:  # the message never quotes the URL (it may hold a password)
        raise click.BadParameter(str(exc)) from None


_CONFIG_HELP = (
    "A destination config (JSON), or a walkerOS flow.json holding it under"
    " flows.<flow>.destinations.<name>.config."
)
_DESTINATION_HELP = (
    "Destination name in a flow.json (optional when it holds one destination,"
    " or one whose package is mParticle's)."
)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=(
        f"Credentials: {ENV_API_KEY} and {ENV_API_SECRET} fill or override"
        " settings.apiKey and settings.apiSecret."
    ),
)
@click.version_option(__version__, "-V", "--version", prog_name="mparticle-dest")
def cli() -> None:
    """Deliver walkerOS events to mParticle's Events API, in per-user batches."""


def config_options(func: click.decorators.FC) -> click.decorators.FC:
    """The ``--config/--destination/--flow`` options shared by ``send`` and ``validate``."""
    func = click.option("--flow", "flow", metavar="NAME", help="Flow name in a multi-flow file.")(
        func
    )
    func = click.option("--destination", "-d", metavar="NAME", help=_DESTINATION_HELP)(func)
    return click.option(
        "--config",
        "-c",
        "config_path",
        required=True,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help=_CONFIG_HELP,
    )(func)


@cli.command()
@config_options
@click.pass_context
def validate(
    ctx: click.Context, config_path: Path, destination: str | None, flow: str | None
) -> None:
    """Check a destination config and print every problem with its key path."""
    where = str(config_path)
    try:
        raw, source = read_config_dict(config_path, destination=destination, flow=flow)
        where = source.describe()
        build_config(raw)
    except ConfigError as exc:
        count = len(exc.problems)
        click.echo(f"{where}: {count} problem{'s' if count != 1 else ''}")
        for problem in exc.problems:
            click.echo(f"  {problem}")
        ctx.exit(EXIT_FAILED)
    click.echo(f"{where}: OK")


@cli.command()
@click.option("--users", default=4, show_default=True, type=click.IntRange(1, 1000))
@click.option("--events", default=80, show_default=True, type=click.IntRange(1, 100_000))
@click.option(
    "--waves",
    default=3,
    show_default=True,
    type=click.IntRange(1, 100),
    help="Push the stream in this many bursts, each followed by a flush.",
)
@click.pass_context
def demo(ctx: click.Context, users: int, events: int, waves: int) -> None:
    """Send example events to an embedded fake mParticle and show what it received.

    Needs no credentials and no network: the fake Events API listens on 127.0.0.1.
    """
    from .demo import demo_main

    delivered_all = demo_main(click.echo, users=users, events=events, waves=waves)
    ctx.exit(EXIT_OK if delivered_all else EXIT_FAILED)


@cli.command()
@click.argument(
    "input_path",
    metavar="FILE|-",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
)
@config_options
@click.option(
    "--base-url",
    metavar="URL",
    callback=lambda _ctx, _param, value: _base_url(value),
    help="Send to this base URL instead of the pod's host (a proxy, a test server).",
)
@click.option(
    "--historical",
    is_flag=True,
    help="Post to /v2/bulkevents/historical (backfills older than 30 days); every event"
    " must carry its timestamp.",
)
@click.option(
    "--drain-timeout",
    metavar="SECONDS",
    type=click.FloatRange(min=0, min_open=True),
    help="After the input ends, wait at most this long for the events still on their way"
    " (default: until every event is delivered or failed; errors end within each"
    " request's retry budget, throttling only slows the run down).",
)
@click.option(
    "--dry-run", is_flag=True, help="Print the mParticle batches (one JSON per line); send nothing."
)
@click.option("--pretty", is_flag=True, help="With --dry-run, indent the JSON.")
@click.option(
    "--rejects",
    "rejects_path",
    metavar="PATH",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Where rejected lines go, as JSON lines (default: FILE.rejects.jsonl, created only"
    " if a line is rejected, removed after a run without rejects; stderr when reading"
    " stdin). '-' is stderr.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show the live progress display (default: only when stderr is a terminal).",
)
@click.option(
    "--close-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="After Ctrl-C/SIGTERM, how long to keep delivering the accepted events; what is"
    " left then is reported as rejected lines (--drain-timeout, when given, bounds this"
    " too).",
)
@click.pass_context
def send(
    ctx: click.Context,
    input_path: Path,
    config_path: Path,
    destination: str | None,
    flow: str | None,
    base_url: str | None,
    historical: bool,
    drain_timeout: float | None,
    dry_run: bool,
    pretty: bool,
    rejects_path: Path | None,
    progress: bool | None,
    close_timeout: float,
) -> None:
    """Deliver the walkerOS events of FILE (JSON Lines; '-' reads stdin) to mParticle.

    Bad lines are reported with their line number, written to the rejects file, and
    skipped; the run goes on. Ctrl-C or SIGTERM stops the reading, delivers what was
    accepted (within --close-timeout) and prints the report. Exit status: 0 when every
    line was delivered (or skipped by the mapping), 1 when some were rejected or failed
    (or nothing could be sent), 2 for usage or config errors, 128 + the signal number
    when a signal stopped it.
    """
    from .send import SendOptions, run_send

    try:
        raw, source = read_config_dict(config_path, destination=destination, flow=flow)
        config = build_config(raw)
    except ConfigError as exc:
        click.echo(f"mparticle-dest: invalid config in {config_path}:", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        ctx.exit(EXIT_CONFIG)
    is_stdin = str(input_path) == "-"
    if rejects_path is None and not is_stdin:
        rejects_path = input_path.with_name(input_path.name + ".rejects.jsonl")
    options = SendOptions(
        input_path=None if is_stdin else input_path,
        rejects_path=None if rejects_path is None or str(rejects_path) == "-" else rejects_path,
        source=source.describe(),
        base_url=base_url,
        historical=historical,
        dry_run=dry_run,
        pretty=pretty,
        progress=progress,
        drain_timeout=drain_timeout,
        close_timeout=close_timeout,
    )
    with (
        click.open_file("-", encoding="utf-8")
        if is_stdin
        else input_path.open(encoding="utf-8", newline="")
    ) as stream:
        report = run_send(config, options, stream, echo=click.echo)
    if report.stopped_by is not None:
        ctx.exit(128 + report.stopped_by)
    ctx.exit(EXIT_OK if report.ok else EXIT_FAILED)


# ``relay``, ``relay status`` and ``relay replay-dead`` (Redis Streams scale-out).
cli.add_command(relay_group)


def run(argv: Sequence[str] | None = None) -> int:
    """Run :data:`cli` and return its exit status instead of exiting.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.
    """
    try:
        cli.main(args=None if argv is None else list(argv), prog_name="mparticle-dest")
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return EXIT_OK
        return code if isinstance(code, int) else EXIT_FAILED
