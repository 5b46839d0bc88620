"""``mparticle-dest send`` against the fake Events API: delivery, rejects, dry run, historical."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.walkeros_steps import load_steps

from mparticle_dest._cli.main import cli
from mparticle_dest.testing import FakeMparticle

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
    assert [e.source_message_id for e in server.events] == ["ev-000001"]


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
        assert "dry run, nothing sent" in result.stderr


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
    assert "timestamp: required with --historical" in result.stderr
    (batch,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["data"]["source_message_id"] for e in batch["events"]] == ["ev-000001"]
    assert "/v2/bulkevents/historical" in result.stderr


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
    assert server.event_count == 200


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
