"""``mparticle-dest send`` against the fake Events API: delivery, rejects, dry run, historical."""

from __future__ import annotations

import json
import os
import re
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.walkeros_steps import load_steps

from mparticle_dest._cli.main import cli
from mparticle_dest.testing import FakeMparticle, Fault, FaultPlan

CONFIG = {
    "settings": {
        "userIdentities": {"customer_id": "user.id"},
    },
    "mapping": {"page": {"view": {"settings": {"eventType": "screen_view"}}}},
}


def event(i: int, user: int, **extra: object) -> dict[str, object]:
    return {
        "name": "page view" if i % 2 else "product view",
        "id": f"ev-{i:06d}",
        "timestamp": 1_700_000_000_000 + i,
        "data": {"path": f"/p/{i}"},
        "user": {"id": f"user-{user}"},
        **extra,
    }


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeMparticle]:
    with FakeMparticle() as fake:
        monkeypatch.setenv("MPARTICLE_API_KEY", fake.settings["apiKey"])
        monkeypatch.setenv("MPARTICLE_API_SECRET", fake.settings["apiSecret"])
        yield fake


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "dest.json"
    path.write_text(json.dumps(CONFIG), encoding="utf-8")
    return path


def send(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, ["send", *args], input=input)


def test_good_and_bad_lines_deliver_the_good_and_reject_the_bad(
    server: FakeMparticle, config_path: Path, tmp_path: Path
) -> None:
    lines = [
        json.dumps(event(1, 1)),
        "{not json",
        json.dumps(event(2, 2)),
        "",
        json.dumps([1, 2]),
        json.dumps({"name": "pageview", "id": "bad-name"}),
        json.dumps(event(3, 1)),
    ]
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = send(str(events_file), "-c", str(config_path), "--base-url", server.url)

    assert result.exit_code == 1, result.output
    assert [e.source_message_id for e in server.events_for("customer_id", "user-1")] == [
        "ev-000001",
        "ev-000003",
    ]
    assert server.event_count == 3
    rejects = [
        json.loads(line)
        for line in (tmp_path / "events.jsonl.rejects.jsonl").read_text().splitlines()
    ]
    assert [(r["line"], r["stage"]) for r in rejects] == [(2, "parse"), (5, "parse"), (6, "event")]
    assert rejects[0]["raw"] == "{not json"
    assert rejects[2]["event"] == {"name": "pageview", "id": "bad-name"}
    assert "name" in rejects[2]["error"]
    assert "line 2: invalid JSON" in result.stderr
    assert "3 events delivered" in result.stdout
    assert "3 rejected (1 event, 2 parse)" in result.stdout
    assert "1 blank lines ignored" in result.stdout


def test_everything_delivered_exits_0_and_creates_no_rejects_file(
    server: FakeMparticle, config_path: Path, tmp_path: Path
) -> None:
    events_file = tmp_path / "ok.jsonl"
    events_file.write_text("".join(json.dumps(event(i, i % 3)) + "\n" for i in range(30)))

    result = send(str(events_file), "-c", str(config_path), "--base-url", server.url)

    assert result.exit_code == 0, result.output
    assert server.event_count == 30
    assert not (tmp_path / "ok.jsonl.rejects.jsonl").exists()
    assert "\r" not in result.stderr  # not a terminal: no progress line


def test_failed_deliveries_are_rejected_lines_too(
    server: FakeMparticle, config_path: Path, tmp_path: Path
) -> None:
    server.set_reject_batch(lambda batch: batch["user_identities"]["customer_id"] == "user-9")
    events_file = tmp_path / "events.jsonl"
    events_file.write_text(
        json.dumps(event(1, 1)) + "\n" + json.dumps(event(2, 9)) + "\n", encoding="utf-8"
    )
    rejects_file = tmp_path / "custom-rejects.jsonl"

    result = send(
        str(events_file),
        "-c",
        str(config_path),
        "--base-url",
        server.url,
        "--rejects",
        str(rejects_file),
    )

    assert result.exit_code == 1
    (record,) = [json.loads(line) for line in rejects_file.read_text().splitlines()]
    assert record["line"] == 2
    assert record["stage"] == "delivery"
    assert record["event"]["id"] == "ev-000002"
    # The real cause, with mParticle's own message, in the rejects and the summary.
    assert record["error"].startswith("mParticle rejected the batch (HTTP 400): ")
    assert "batch rejected (reject_batch)" in record["error"]
    assert "delivery failures:" in result.stdout
    assert f"  1 × {record['error']}" in result.stdout
    assert [e.source_message_id for e in server.events] == ["ev-000001"]


def test_wrong_credentials_are_the_cause_of_every_failed_line(
    server: FakeMparticle, config_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MPARTICLE_API_SECRET", "not-the-secret")
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("".join(json.dumps(event(i, i % 4)) + "\n" for i in range(12)))

    result = send(str(events_file), "-c", str(config_path), "--base-url", server.url)

    assert result.exit_code == 1
    rejects = (tmp_path / "events.jsonl.rejects.jsonl").read_text().splitlines()
    errors = {json.loads(r)["error"] for r in rejects}
    assert len(rejects) == 12
    (error,) = errors
    assert error.startswith("mParticle refused the credentials (HTTP 403): check apiKey")
    assert f"12 × {error}" in result.stdout
    assert "close timeout" not in result.output


def test_a_closed_port_fails_fast_with_connection_refused(
    config_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MPARTICLE_API_KEY", "k")
    monkeypatch.setenv("MPARTICLE_API_SECRET", "s")
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("".join(json.dumps(event(i, i % 50)) + "\n" for i in range(500)))

    result = send(
        str(events_file), "-c", str(config_path), "--base-url", f"http://127.0.0.1:{port}"
    )

    assert result.exit_code == 1
    assert f"nothing sent: connection refused by 127.0.0.1:{port}" in result.stdout
    assert "close timeout" not in result.output
    assert not (tmp_path / "events.jsonl.rejects.jsonl").exists()


def test_connection_refused_after_a_retry_budget_is_named_as_such() -> None:
    from mparticle_dest import Outcome, RetryBudgetExhaustedError
    from mparticle_dest._cli.send import failure_cause

    refused = RetryBudgetExhaustedError(
        "retry budget spent (8 attempts, last: ConnectError: [Errno 111] Connection refused)"
    )
    throttled = RetryBudgetExhaustedError("retry budget spent (5 attempts, last: HTTP 429)")

    def failed(error: RetryBudgetExhaustedError) -> Outcome:
        return Outcome("failed", "e1", reason="retry_budget", error=error)

    assert failure_cause(failed(refused), None) == "connection refused (retry budget spent)"
    assert failure_cause(failed(throttled), None) == "retry budget spent, last: HTTP 429"


def test_a_backfill_against_a_rate_limited_server_delivers_everything_by_default(
    config_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Scaled down from 20,000 events of 5,000 users at mParticle's ~270 batches/s: the
    # run needs about 20 s of sending after the file is read (500 batches at 25/s),
    # twice what a close timeout of 10 s allowed.
    events_file = tmp_path / "backfill.jsonl"
    events_file.write_text("".join(json.dumps(event(i, i % 500)) + "\n" for i in range(2000)))
    with FakeMparticle(rate_limit=25, record=False) as fake:
        monkeypatch.setenv("MPARTICLE_API_KEY", fake.settings["apiKey"])
        monkeypatch.setenv("MPARTICLE_API_SECRET", fake.settings["apiSecret"])

        result = send(str(events_file), "-c", str(config_path), "--base-url", fake.url)

        received = fake.event_count
        throttled = fake.stats.by_status.get(429, 0)
    assert result.exit_code == 0, result.output
    assert received == 2000
    assert throttled > 0  # the limit was hit, and waited out
    assert "2,000 events delivered" in result.stdout
    assert f"{throttled:,} throttled" in result.stdout


def test_drain_timeout_bounds_the_wait_and_names_itself_as_the_cause(
    server: FakeMparticle, config_path: Path, tmp_path: Path
) -> None:
    server.set_faults(FaultPlan.always(Fault.stall()))
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("".join(json.dumps(event(i, 1)) + "\n" for i in range(3)))
    try:
        result = send(
            str(events_file),
            "-c",
            str(config_path),
            "--base-url",
            server.url,
            "--drain-timeout",
            "0.5",
        )
    finally:
        server.release_stalled()

    assert result.exit_code == 1
    rejects = (tmp_path / "events.jsonl.rejects.jsonl").read_text().splitlines()
    assert {json.loads(r)["error"] for r in rejects} == {
        "--drain-timeout (0.5 s) ran out before it was delivered"
    }
    assert "3 × --drain-timeout (0.5 s) ran out" in result.stdout


def test_a_clean_run_removes_the_rejects_file_of_an_earlier_run(
    server: FakeMparticle, config_path: Path, tmp_path: Path
) -> None:
    events_file = tmp_path / "events.jsonl"
    stale = tmp_path / "events.jsonl.rejects.jsonl"
    events_file.write_text("{broken\n")
    assert send(str(events_file), "-c", str(config_path), "--base-url", server.url).exit_code == 1
    assert stale.exists()
    events_file.write_text(json.dumps(event(1, 1)) + "\n")  # fixed

    result = send(str(events_file), "-c", str(config_path), "--base-url", server.url)

    assert result.exit_code == 0, result.output
    assert not stale.exists()


def test_piped_report_keeps_its_plain_line_shape(
    server: FakeMparticle, config_path: Path, tmp_path: Path
) -> None:
    events_file = tmp_path / "events.jsonl"
    events_file.write_text(json.dumps(event(1, 1)) + "\n\n" + "nope\n")

    result = send(str(events_file), "-c", str(config_path), "--base-url", server.url)

    lines = result.stdout.splitlines()
    assert lines[0].startswith("mparticle-dest send: ")
    assert re.fullmatch(r"3 lines read in \d+\.\d s \(\d+ lines/s\)", lines[1]), lines[1]
    assert lines[2:] == [
        "  1 events delivered",
        "  1 rejected (1 parse)",
        "  1 blank lines ignored",
        "  1 batches in 1 requests to /v2/bulkevents (0 retries, 0 throttled)",
        f"  rejected lines written to {events_file}.rejects.jsonl",
    ]
    assert "\x1b" not in result.output  # no terminal codes in a pipe


def test_stdin_input_reports_rejects_on_stderr(server: FakeMparticle, config_path: Path) -> None:
    text = json.dumps(event(1, 1)) + "\nnope\n"

    result = send("-", "-c", str(config_path), "--base-url", server.url, input=text)

    assert result.exit_code == 1
    assert server.event_count == 1
    record = json.loads(next(ln for ln in result.stderr.splitlines() if ln.startswith("{")))
    assert record == {"line": 2, "stage": "parse", "error": record["error"], "raw": "nope"}


def test_invalid_config_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"settings": {"apiKey": "k", "apiSecret": "s", "pod": "mars"}}))
    events_file = tmp_path / "e.jsonl"
    events_file.write_text(json.dumps(event(1, 1)) + "\n")

    result = send(str(events_file), "-c", str(bad))

    assert result.exit_code == 2
    assert "settings.pod" in result.stderr


# --- --dry-run ------------------------------------------------------------------------------


def test_dry_run_prints_each_batch_byte_exact_and_sends_nothing(tmp_path: Path) -> None:
    for step in load_steps():
        config_file = tmp_path / f"{step.name}.json"
        config_file.write_text(json.dumps(step.config))
        events_file = tmp_path / f"{step.name}.jsonl"
        events_file.write_text(json.dumps(step.event) + "\n")

        result = send(str(events_file), "-c", str(config_file), "--dry-run")

        assert result.exit_code == 0, result.output
        assert result.stdout == step.body + "\n", step.name
        assert "  1 events built (dry run, nothing sent)" in result.stderr
        assert "delivered" not in result.stderr


def test_dry_run_groups_events_per_user(config_path: Path, tmp_path: Path) -> None:
    events_file = tmp_path / "e.jsonl"
    events_file.write_text("".join(json.dumps(event(i, i % 2)) + "\n" for i in range(6)))
    env = {"MPARTICLE_API_KEY": "k", "MPARTICLE_API_SECRET": "s"}

    result = CliRunner(env=env).invoke(
        cli, ["send", str(events_file), "-c", str(config_path), "--dry-run", "--pretty"]
    )

    assert result.exit_code == 0, result.output
    decoder = json.JSONDecoder()
    text, batches = result.stdout.strip(), []
    while text:
        batch, end = decoder.raw_decode(text)
        batches.append(batch)
        text = text[end:].strip()
    assert [b["user_identities"]["customer_id"] for b in batches] == ["user-0", "user-1"]
    assert [[e["data"]["source_message_id"] for e in b["events"]] for b in batches] == [
        ["ev-000000", "ev-000002", "ev-000004"],
        ["ev-000001", "ev-000003", "ev-000005"],
    ]


# --- --historical ---------------------------------------------------------------------------


def test_historical_rejects_events_without_timestamp_in_dry_run(
    config_path: Path, tmp_path: Path
) -> None:
    no_ts = {k: v for k, v in event(2, 1).items() if k != "timestamp"}
    events_file = tmp_path / "old.jsonl"
    events_file.write_text(json.dumps(event(1, 1)) + "\n" + json.dumps(no_ts) + "\n")
    env = {"MPARTICLE_API_KEY": "k", "MPARTICLE_API_SECRET": "s"}

    result = CliRunner(env=env).invoke(
        cli, ["send", str(events_file), "-c", str(config_path), "--dry-run", "--historical"]
    )

    assert result.exit_code == 1
    assert "line 2: timestamp: required when posting to the historical endpoint" in result.stderr
    (batch,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["data"]["source_message_id"] for e in batch["events"]] == ["ev-000001"]
    assert "/v2/bulkevents/historical" in result.stderr


def test_historical_reports_a_lines_own_error_and_skips_what_the_mapping_skips(
    config_path: Path, tmp_path: Path
) -> None:
    mapping = {**CONFIG["mapping"], "debug": {"ping": {"ignore": True}}}  # type: ignore[dict-item]
    config_path.write_text(json.dumps({**CONFIG, "mapping": mapping}))
    lines = [
        {"name": "pageview", "user": {"id": "u1"}},  # invalid name, and no timestamp
        {"name": "debug ping", "user": {"id": "u1"}},  # ignored by the mapping
        event(3, 1),
    ]
    events_file = tmp_path / "old.jsonl"
    events_file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    env = {"MPARTICLE_API_KEY": "k", "MPARTICLE_API_SECRET": "s"}

    result = CliRunner(env=env).invoke(
        cli, ["send", str(events_file), "-c", str(config_path), "--dry-run", "--historical"]
    )

    assert result.exit_code == 1
    rejects = (tmp_path / "old.jsonl.rejects.jsonl").read_text().splitlines()
    assert [(r["line"], r["error"].split(":")[0]) for r in map(json.loads, rejects)] == [
        (1, "name")
    ]
    assert "1 skipped by the mapping (1 ignore)" in result.stderr
    assert "1 events built" in result.stderr


def test_historical_posts_to_the_historical_endpoint(
    server: FakeMparticle, config_path: Path, tmp_path: Path
) -> None:
    no_ts = {k: v for k, v in event(3, 1).items() if k != "timestamp"}
    events_file = tmp_path / "old.jsonl"
    events_file.write_text(
        json.dumps(event(1, 1)) + "\n" + json.dumps(event(2, 2)) + "\n" + json.dumps(no_ts) + "\n"
    )

    result = send(
        str(events_file), "-c", str(config_path), "--base-url", server.url, "--historical"
    )

    assert result.exit_code == 1  # the line without timestamp
    assert {r.path for r in server.requests} == {"/v2/bulkevents/historical"}
    assert sorted(e.source_message_id or "" for e in server.events) == ["ev-000001", "ev-000002"]
    rejects = (tmp_path / "old.jsonl.rejects.jsonl").read_text().splitlines()
    assert [json.loads(r)["line"] for r in rejects] == [3]


# --- progress on a terminal -----------------------------------------------------------------


def test_progress_line_is_drawn_on_a_terminal(
    server: FakeMparticle, config_path: Path, tmp_path: Path
) -> None:
    pty = pytest.importorskip("pty")  # POSIX terminals only
    events_file = tmp_path / "e.jsonl"
    events_file.write_text("".join(json.dumps(event(i, i % 5)) + "\n" for i in range(200)))
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen(  # noqa: S603 - this interpreter, our own arguments
            [
                sys.executable,
                "-m",
                "mparticle_dest",
                "send",
                str(events_file),
                "-c",
                str(config_path),
                "--base-url",
                server.url,
            ],
            stdout=subprocess.PIPE,
            stderr=secondary,
            env={**os.environ},
        )
        os.close(secondary)
        drawn = b""
        while True:
            ready, _, _ = select.select([primary], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            drawn += chunk
        out, _ = proc.communicate(timeout=30)
    finally:
        os.close(primary)

    assert proc.returncode == 0, out
    text = drawn.decode()
    assert "200/200 lines" in text
    assert "ev/s" in text
    assert "100%" in text
    assert "200 delivered · 0 failed · 0 throttled · 0 waiting" in text
    assert "ETA" in text
    assert "\x1b[" in text  # rich redraws in place
    assert server.event_count == 200
    assert "  200 events delivered" in out.decode()  # stdout is a pipe: plain lines


# --- a large file ---------------------------------------------------------------------------


def test_50k_lines_deliver_every_valid_line_with_progress_and_reject_the_bad(
    config_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    total, bad_every = 50_000, 1000
    events_file = tmp_path / "big.jsonl"
    bad_lines: list[int] = []
    with events_file.open("w", encoding="utf-8") as f:
        for i in range(1, total + 1):
            if i % bad_every == 0:
                bad_lines.append(i)
                f.write('{"name": "broken"\n' if i % 2000 else json.dumps({"name": "x"}) + "\n")
            else:
                f.write(json.dumps(event(i, i % 500)) + "\n")
    with FakeMparticle(record=False) as fake:
        monkeypatch.setenv("MPARTICLE_API_KEY", fake.settings["apiKey"])
        monkeypatch.setenv("MPARTICLE_API_SECRET", fake.settings["apiSecret"])

        result = send(
            str(events_file), "-c", str(config_path), "--base-url", fake.url, "--progress"
        )

        delivered = fake.event_count
    assert result.exit_code == 1
    assert delivered == total - len(bad_lines)
    assert f"{total - len(bad_lines):,} events delivered" in result.stdout
    assert f"{total:,}/{total:,} lines" in result.stderr  # the progress line's last state
    assert "ev/s" in result.stderr
    rejects = (tmp_path / "big.jsonl.rejects.jsonl").read_text().splitlines()
    assert [json.loads(r)["line"] for r in rejects] == bad_lines
