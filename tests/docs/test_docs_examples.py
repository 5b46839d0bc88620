"""Every ```python block in ``docs/*.md`` runs, page by page.

The blocks of one page run in order, in one fresh namespace, as plain module code
(async examples call ``anyio.run(main)`` themselves). Each block is compiled with the
page's path as file name and padded so that a traceback points at the exact line of
the Markdown page. Blocks run in a temporary working directory with no
``MPARTICLE_*`` variables set, so an example can write files and never reads real
credentials. A page must leave no thread, server or logging handler behind.

Only the info string ``python`` (optionally followed by attributes, such as
``python title="app.py"``) is executed; use ``json``, ``text``, ``console`` or
``pycon`` for everything that must not run, and ``py`` for Python that is highlighted
but cannot run here (a snippet needing Flask or Django, say).
"""

from __future__ import annotations

import gc
import logging
import os
import re
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

DOCS_DIR = Path(__file__).resolve().parents[2] / "docs"

# An opening fence: indentation, 3+ backticks or tildes, then the info string.
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n]*)$")
# Only ``python`` exactly, optionally followed by whitespace or ``{`` and attributes.
_RUNNABLE = re.compile(r"^python(?:[\s{].*)?$")


@dataclass(frozen=True)
class Block:
    """One executable code block: its first code line (1-based) and its source."""

    line: int
    source: str


def extract_python_blocks(text: str) -> list[Block]:
    """Return the ```python blocks of a Markdown text, in order.

    Fences may be indented (inside admonitions or tabs); the indentation of the
    opening fence is removed from every line of the block. A fence closes on a line
    holding the same fence character, at least as many times, and nothing else.
    """
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        fence = match["fence"]
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        start = i + 1
        end = start
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        if _RUNNABLE.match(match["info"].strip()):
            body = "\n".join(lines[start:end])
            blocks.append(Block(line=start + 1, source=textwrap.dedent(body)))
        i = end + 1
    return blocks


def exec_block(page: Path, block: Block, namespace: dict[str, object]) -> None:
    """Run one block; padding keeps traceback line numbers equal to the page's."""
    source = "\n" * (block.line - 1) + block.source
    exec(compile(source, str(page), "exec"), namespace)  # noqa: S102 - running docs is the point


def _pages() -> list[Path]:
    return sorted(DOCS_DIR.glob("*.md"))


def _pages_with_code() -> list[Path]:
    return [p for p in _pages() if extract_python_blocks(p.read_text(encoding="utf-8"))]


def _wait_for_threads_to_end(before: set[threading.Thread], timeout: float) -> list[str]:
    """Give threads started by the page a moment to finish; return the stragglers."""
    deadline = time.monotonic() + timeout
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra or time.monotonic() >= deadline:
            return [t.name for t in extra]
        extra[0].join(timeout=0.05)


@pytest.mark.parametrize("page", _pages_with_code(), ids=lambda p: p.name)
def test_docs_page_examples_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("MPARTICLE_"):
            monkeypatch.delenv(name)
    root = logging.getLogger()
    root_state = (list(root.handlers), root.level)
    lib_logger = logging.getLogger("mparticle_dest")
    lib_state = (list(lib_logger.handlers), lib_logger.level, lib_logger.propagate)
    threads_before = set(threading.enumerate())

    namespace: dict[str, object] = {"__name__": "__main__"}
    try:
        for block in extract_python_blocks(page.read_text(encoding="utf-8")):
            exec_block(page, block, namespace)
    finally:
        namespace.clear()
        gc.collect()
        added_handlers = [h for h in root.handlers if h not in root_state[0]]
        added_handlers += [h for h in lib_logger.handlers if h not in lib_state[0]]
        root.handlers[:] = root_state[0]
        root.setLevel(root_state[1])
        lib_logger.handlers[:] = lib_state[0]
        lib_logger.setLevel(lib_state[1])
        lib_logger.propagate = lib_state[2]
        for handler in added_handlers:
            handler.close()

    leftover = _wait_for_threads_to_end(threads_before, timeout=5.0)
    assert not leftover, f"{page.name} left threads running (an unclosed server?): {leftover}"


# --- the extractor itself ---------------------------------------------------------------

_SAMPLE = """\
# Title

```python
a = 1
```

```pycon
>>> not_run()
```

```json
{"not": "run"}
```

!!! note

    ```python title="indented.py"
    b = a + 1
    ```

````python
s = '''
```
'''
````

```python3
not_run()
```
"""


def test_extractor_runs_only_python_blocks_with_their_lines() -> None:
    blocks = extract_python_blocks(_SAMPLE)

    assert [b.line for b in blocks] == [4, 18, 22]
    assert blocks[0].source == "a = 1"
    assert blocks[1].source == "b = a + 1"  # indentation of the fence removed
    assert blocks[2].source == "s = '''\n```\n'''"  # a longer fence contains a shorter one


def test_extractor_treats_an_unclosed_fence_as_running_to_the_end() -> None:
    blocks = extract_python_blocks("```python\nx = 1\n")

    assert blocks == [Block(line=2, source="x = 1")]


def test_failing_block_reports_the_page_line(tmp_path: Path) -> None:
    page = tmp_path / "broken.md"
    page.write_text("intro\n\n```python\nok = 1\nraise RuntimeError('boom')\n```\n")
    (block,) = extract_python_blocks(page.read_text())

    with pytest.raises(RuntimeError) as info:
        exec_block(page, block, {})

    frame = info.traceback[-1]
    assert Path(str(frame.path)) == page
    assert frame.lineno + 1 == 5  # pytest's lineno is 0-based
