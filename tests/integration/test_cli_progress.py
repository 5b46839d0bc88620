"""The live progress display and the summary of ``mparticle-dest send``, as rich draws them."""

from __future__ import annotations

import io

from rich.console import Console

from mparticle_dest._cli.io import LiveCounts, ProgressDisplay, print_summary


def terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=160, color_system=None), out


def test_live_display_shows_lines_rate_outcomes_and_eta_on_a_terminal() -> None:
    console, out = terminal()
    counts = LiveCounts(lines=600, final=450, delivered=400, failed=30, throttled=7, waiting=150)

    with ProgressDisplay(1000, console=console, enabled=True) as display:
        display.update(counts)
        display.message("line 17: invalid JSON")

    text = out.getvalue()
    assert "600/1,000 lines" in text
    assert "45%" in text  # final lines of the total
    assert "ev/s" in text
    assert "400 delivered · 30 failed · 7 throttled · 150 waiting" in text
    assert "ETA" in text
    assert "line 17: invalid JSON" in text
    assert "\r" in text or "\x1b[" in text  # drawn in place


def test_without_a_known_total_the_display_shows_the_count_alone() -> None:
    console, out = terminal()

    with ProgressDisplay(None, console=console, enabled=True) as display:
        display.update(LiveCounts(lines=42, final=42, delivered=42))

    text = out.getvalue()
    assert "42 lines" in text and "/" not in text.split("lines")[0]


def test_a_disabled_display_draws_nothing_but_still_prints_messages() -> None:
    console, out = terminal()

    with ProgressDisplay(10, console=console, enabled=False) as display:
        display.update(LiveCounts(lines=5))
        display.message("line 3: name: required")

    assert out.getvalue() == "line 3: name: required\n"


def test_summary_is_a_table_on_a_terminal_and_plain_lines_in_a_pipe() -> None:
    heading = ["mparticle-dest send: flow.json", "3 lines read in 0.1 s (30 lines/s)"]
    rows = [("2", "events delivered"), ("1", "rejected (1 parse)")]
    notes = ["rejected lines written to e.jsonl.rejects.jsonl"]
    console, out = terminal()
    pipe = io.StringIO()

    print_summary(console, heading, rows, notes)
    print_summary(Console(file=pipe, force_terminal=False), heading, rows, notes)

    table = out.getvalue().splitlines()
    assert table[:2] == heading
    assert [line.split() for line in table[2:4]] == [
        ["2", "events", "delivered"],
        ["1", "rejected", "(1", "parse)"],
    ]
    assert pipe.getvalue().splitlines() == [
        *heading,
        "  2 events delivered",
        "  1 rejected (1 parse)",
        "  rejected lines written to e.jsonl.rejects.jsonl",
    ]
