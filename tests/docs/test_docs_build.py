"""The documentation site builds with ``mkdocs build --strict`` (as ``nox -s docs`` does).

Strict mode fails on any warning: a page missing from the nav, a broken link or
anchor, a docstring mkdocstrings cannot render. The build takes a few seconds; it is
skipped where the docs tools are not installed (the ``dev`` extra has them).
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import mparticle_dest
import mparticle_dest.mapping
import mparticle_dest.testing

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
    reference = (tmp_path / "reference" / "index.html").read_text("utf-8")
    rendered = set(re.findall(r'id="(mparticle_dest[\w.]*)"', reference))
    missing = [
        f"{module.__name__}.{name}"
        for module in (mparticle_dest, mparticle_dest.mapping, mparticle_dest.testing)
        for name in module.__all__
        if _documented_api(getattr(module, name)) and f"{module.__name__}.{name}" not in rendered
    ]
    assert not missing, f"public names missing from the API reference: {missing}"


def _documented_api(obj: object) -> bool:
    """Classes and functions: every one must have its entry on the reference page."""
    return inspect.isclass(obj) or inspect.isfunction(obj)
