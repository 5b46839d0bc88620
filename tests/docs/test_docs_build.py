"""The documentation site builds with ``mkdocs build --strict`` (as ``nox -s docs`` does).

Strict mode fails on any warning: a page missing from the nav, a broken link or
anchor, a docstring mkdocstrings cannot render. The build takes a few seconds; it is
skipped where the docs tools are not installed (the ``dev`` extra has them).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings")
pytest.importorskip("material")

REPO = Path(__file__).resolve().parents[2]


def test_mkdocs_build_strict_succeeds(tmp_path: Path) -> None:
    done = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )

    warnings = [line for line in done.stderr.splitlines() if "WARNING" in line]
    assert done.returncode == 0, "\n".join(warnings) or done.stderr
    assert (tmp_path / "reference" / "index.html").exists()
