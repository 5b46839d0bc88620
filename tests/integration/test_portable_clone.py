"""The suite passes from a copy of the repository with nothing beside it.

The project's CI keeps reference files in ``../shared/`` next to the checkout; a
user's clone has none. This copies the files git knows of (tracked, plus new ones not
ignored: what the working tree holds now) into a temporary folder with no
``../shared``, runs a slice of the suite there in a subprocess with this interpreter,
and checks it passes, that the reference cross-checks are skipped with one summary
line per missing file, and that the OAS audit says it is inactive. A test that opens
a path outside the repository without going through ``support.references`` fails the
slice (at collection, if it reads at import time).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: Quick modules covering every kind of reader of the walkerOS steps and the OAS:
#: our data (payload bytes, config, events, CLI dry run, end to end over loopback)
#: and pure cross-checks (skipped there).
SLICE = [
    "tests/contract/test_payload_walkeros.py",
    "tests/contract/test_oas_support.py",
    "tests/contract/test_references.py",
    "tests/unit/test_config.py",
    "tests/unit/test_payload_builder.py",
    "tests/integration/test_walkeros_end_to_end.py",
]


def _git(*args: str) -> subprocess.CompletedProcess[bytes]:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed: cannot list the repository's files")
    return subprocess.run(  # noqa: S603 - git, fixed arguments
        [git, "-C", str(REPO), *args], capture_output=True, timeout=30, check=False
    )


def _checkout_files() -> list[str]:
    top = _git("rev-parse", "--show-toplevel")
    if top.returncode != 0 or Path(top.stdout.decode().strip()).resolve() != REPO:
        pytest.skip(f"{REPO} is not a git checkout: cannot list the repository's files")
    listed = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard")
    assert listed.returncode == 0, listed.stderr
    return [name for name in listed.stdout.decode().split("\0") if name]


def _copy(names: list[str], to: Path) -> None:
    for name in names:
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            (to / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, to / name)


@pytest.mark.timeout(240)
def test_a_copy_with_nothing_beside_it_passes_and_names_the_missing_references(
    tmp_path: Path,
) -> None:
    copy = tmp_path / "clone"
    _copy(_checkout_files(), copy)
    assert not (tmp_path / "shared").exists()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(copy)  # the copy's package, not this checkout's

    where = subprocess.run(
        [sys.executable, "-c", "import mparticle_dest; print(mparticle_dest.__file__)"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(copy), where.stdout

    done = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider", *SLICE],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    summary = out.splitlines()[-1]
    assert re.search(r"\d+ passed, \d+ skipped in ", summary), summary
    assert "error" not in summary and "failed" not in summary, summary
    for name in ("mparticle.events.oas.yaml", "walkeros-step-examples.json"):
        skip_lines = [
            line
            for line in out.splitlines()
            if line.startswith("SKIPPED") and f"../shared/{name} is not beside" in line
        ]
        assert len(skip_lines) == 1, out  # one summary line per missing file
        assert "tests/support/references.py" in skip_lines[0]
    assert "OAS audit inactive: reference file ../shared/mparticle.events.oas.yaml" in out
