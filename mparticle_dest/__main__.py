"""Entry point of the ``mparticle-dest`` command (also ``python -m mparticle_dest``).

The command line needs click and rich, the optional ``cli`` extra, so that services
embedding the library do not pull them in. Without them, :func:`main` says how to
install them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

_MISSING_CLICK = (
    "mparticle-dest: the command line needs the 'cli' extra.\n"
    "Install it with:  pip install 'mparticle-dest[cli]'\n"
    "(until the first release, from a clone of the repository: pip install -e '.[cli]')\n"
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        0 when everything succeeded, 1 when some events (or config checks) failed,
        2 for usage and config errors, including a missing ``cli`` extra.
    """
    try:
        import click  # noqa: F401 - only probing that the extra is installed
        import rich  # noqa: F401
    except ImportError:
        sys.stderr.write(_MISSING_CLICK)
        return 2
    from ._cli import run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
