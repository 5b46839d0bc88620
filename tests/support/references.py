"""Reference files kept beside the checkout (``<repo>/../shared/``), never inside it.

The project's CI places two reference files next to the repository: mParticle's
official Events API OpenAPI file and walkerOS's step examples. A clone anywhere else
has neither, and the suite must still pass there. So every test that cross-checks
against a reference goes through this module:

- mark it (or its module) with ``requires(OAS)`` / ``requires(STEP_EXAMPLES)``, or
- call ``require(name)`` where the file is needed (``support.oas`` does).

Either way the skip is raised from :func:`require`, so pytest's ``-ra`` summary groups
every skip for one missing file into a single line naming it. Nothing is read at
import or collection time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

__all__ = [
    "OAS",
    "REFERENCE_DIR",
    "STEP_EXAMPLES",
    "available",
    "missing_reason",
    "pytest_configure",
    "pytest_runtest_setup",
    "require",
    "requires",
]

REFERENCE_DIR = Path(__file__).resolve().parents[2].parent / "shared"

#: mParticle's official Events API OpenAPI file.
OAS = "mparticle.events.oas.yaml"
#: walkerOS's step examples (our facts from them: ``tests/data/walkeros_steps.json``).
STEP_EXAMPLES = "walkeros-step-examples.json"

_MARKER = "references"


def available(name: str) -> bool:
    """Whether the reference file ``name`` sits in ``../shared/`` beside the checkout."""
    return (REFERENCE_DIR / name).is_file()


def missing_reason(name: str) -> str:
    """The skip reason for a missing reference file: the file, and where it was looked for."""
    return f"reference file ../shared/{name} is not beside the checkout ({REFERENCE_DIR / name})"


def require(name: str) -> Path:
    """Return the reference file's path, or skip the running test with a reason naming it."""
    if not available(name):
        pytest.skip(missing_reason(name))
    return REFERENCE_DIR / name


def requires(*names: str) -> pytest.MarkDecorator:
    """Mark a test (or a module, as ``pytestmark``) that needs these reference files."""
    return getattr(pytest.mark, _MARKER)(*names)


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``references`` marker (conftest hook; the run uses ``--strict-markers``)."""
    config.addinivalue_line(
        "markers", f"{_MARKER}(*names): needs these reference files beside the checkout"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a test marked ``requires(...)`` whose reference file is missing (conftest hook)."""
    for mark in item.iter_markers(_MARKER):
        for name in mark.args:
            require(name)
