"""The walkerOS step examples as the project's own test data (``tests/data/walkeros_steps.json``).

Each step is a fact about walkerOS's mParticle destination: the event pushed, the
destination config, and the single request walkerOS makes for it. ``load_steps``
parses the file on every call, so a test may change what it gets without affecting
another test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["STEPS_FILE", "Step", "load_steps", "step_ids"]

STEPS_FILE = Path(__file__).resolve().parents[1] / "data" / "walkeros_steps.json"


@dataclass(frozen=True)
class Step:
    """One walkerOS step: ``event`` and ``config`` in, one request out (path, headers, body)."""

    name: str
    event: dict[str, Any]
    config: dict[str, Any]
    path: str
    headers: dict[str, str]
    body: str


def load_steps() -> list[Step]:
    """Return the four steps, freshly parsed."""
    raw = json.loads(STEPS_FILE.read_text("utf-8"))
    return [
        Step(
            name=step["name"],
            event=step["event"],
            config=step["config"],
            path=step["request"]["path"],
            headers=step["request"]["headers"],
            body=step["request"]["body"],
        )
        for step in raw["steps"]
    ]


def step_ids(step: Step) -> str:
    """Test id of a step (``parametrize(..., ids=step_ids)``)."""
    return step.name
