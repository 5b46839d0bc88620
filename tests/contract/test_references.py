"""The reference files beside the checkout: our facts still equal them, and a missing one skips.

``tests/data/walkeros_steps.json`` is the project's own record of walkerOS's step
examples; where the reference file sits beside the checkout (CI) it must hold the
same facts. ``support.references`` turns a missing reference into a skip whose
reason names the file, raised from one place so ``-ra`` prints one line per file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import references
from support.references import OAS, STEP_EXAMPLES, require, requires
from support.walkeros_steps import load_steps


@requires(STEP_EXAMPLES)
def test_our_walkeros_steps_hold_the_reference_facts() -> None:
    reference = json.loads(require(STEP_EXAMPLES).read_text("utf-8"))["examples"]
    ours = load_steps()
    assert [step.name for step in ours] == [example["name"] for example in reference]
    for step, example in zip(ours, reference, strict=True):
        assert step.event == example["event"], step.name
        assert step.config == example["config"], step.name
        assert step.body == example["expected_body"], step.name
        assert step.headers == example["expected_headers"], step.name


@pytest.mark.parametrize("name", [OAS, STEP_EXAMPLES])
def test_a_missing_reference_skips_with_a_reason_naming_it(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(references, "REFERENCE_DIR", tmp_path / "shared")
    assert not references.available(name)
    with pytest.raises(pytest.skip.Exception, match=rf"\.\./shared/{name} is not beside"):
        require(name)


def test_a_present_reference_is_returned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / OAS).write_text("openapi: 3.0.0\n")
    monkeypatch.setattr(references, "REFERENCE_DIR", tmp_path / "shared")
    assert require(OAS) == tmp_path / "shared" / OAS
