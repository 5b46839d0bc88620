"""Entry point of the ``mparticle-dest`` command (also ``python -m mparticle_dest``).

The command line needs click, an optional extra, so that services embedding the
library do not pull it in. Without it, :func:`main` says how to install it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

_MISSING_CLICK = (
    "mparticle-dest: the command line needs the 'cli' extra.\n"
    "Install it with:  pip install 'mparticle-dest[cli]'\n"
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        0 when everything succeeded, 1 when some events (or config checks) failed,
        2 for usage and config errors, including a missing ``click``.
    """
    try:
        import click  # noqa: F401 - only probing that the extra is installed
    except ImportError:
        sys.stderr.write(_MISSING_CLICK)
        return 2
    from ._cli import run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
