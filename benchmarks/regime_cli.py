"""The command line every regime benchmark shares: ``--smoke``, ``--json``, the report."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

P = TypeVar("P")

_SMOKE_HELP = "tiny run for CI (figures not meaningful)"


def parser(name: str, doc: str | None, smoke_help: str = _SMOKE_HELP) -> argparse.ArgumentParser:
    """``python -m benchmarks NAME``'s parser, with ``--smoke`` and ``--json``."""
    ap = argparse.ArgumentParser(
        prog=f"python -m benchmarks {name}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--smoke", action="store_true", help=smoke_help)
    ap.add_argument("--json", type=Path, metavar="PATH", help="also write the report as JSON")
    return ap


def params(args: argparse.Namespace, default: P, smoke: P, names: Iterable[str]) -> P:
    """The run's parameters (a dataclass): ``smoke`` with ``--smoke``, else ``default``,
    with each of ``names`` given on the command line in its place."""
    given = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    return dataclasses.replace(smoke if args.smoke else default, **given)  # type: ignore[type-var]


def emit(
    report: dict[str, Any], fmt: Callable[[dict[str, Any]], str], args: argparse.Namespace
) -> int:
    """Print ``report`` as text (``fmt``) and write it as JSON where ``--json`` says."""
    report["smoke"] = args.smoke
    print(fmt(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0
