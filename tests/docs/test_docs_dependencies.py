"""The install docs name every runtime dependency the package declares."""

from __future__ import annotations

import re
from importlib.metadata import requires
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_quickstart_lists_every_runtime_dependency() -> None:
    declared = {
        re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("-", "_")
        for requirement in requires("mparticle-dest") or []
        if "extra ==" not in requirement
    }
    text = (DOCS / "quickstart.md").read_text(encoding="utf-8")
    sentence = text[text.index("The runtime dependencies are") :].split("\n\n")[0]

    missing = {name for name in declared if name not in sentence.replace("-", "_")}
    assert declared and not missing, missing
