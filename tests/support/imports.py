"""What ``import mparticle_dest`` loads, seen from a fresh interpreter.

A test process has imported everything already; only a new one shows what a service's
``import mparticle_dest`` pulls in.
"""

from __future__ import annotations

import subprocess
import sys


def loaded_by_import(*top_level: str, prefix: str | None = None) -> list[str]:
    """The modules of the packages ``top_level`` (and those starting with ``prefix``) loaded
    after ``import mparticle_dest`` alone, sorted."""
    code = (
        "import sys, mparticle_dest;"
        f"print('\\n'.join(sorted(m for m in sys.modules if m.split('.')[0] in {top_level!r}"
        f" or ({prefix!r} is not None and m.startswith({prefix!r})))))"
    )
    out = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return out.split()
