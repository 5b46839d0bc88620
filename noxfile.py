"""Developer and CI sessions: ``nox -s lint typecheck tests docs`` is what CI runs."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests", "docs"]


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (asyncio and trio) on the current interpreter."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(python=["3.10"])
def tests_compat(session: nox.Session) -> None:
    """Run the test suite on the oldest supported Python."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check, and the import layers (import-linter)."""
    session.install("ruff>=0.6", "import-linter>=2.1", "-e", ".")
    session.run("lint-imports")
    session.run("ruff", "check", "mparticle_dest", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "mparticle_dest", "tests", "benchmarks", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package."""
    session.install("-e", ".[dev]")
    session.run("mypy", "--strict", "mparticle_dest")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site; warnings are errors."""
    session.install("-e", ".[dev]")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site")


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmark suite (pass ``-- --smoke`` for the short CI variant)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "benchmarks", *session.posargs)
