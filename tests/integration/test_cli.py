"""The ``mparticle-dest`` command: entry points, ``validate``, ``demo`` and config files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mparticle_dest import __version__
from mparticle_dest.__main__ import main
from mparticle_dest._cli.main import cli

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_FLOW = REPO / "examples" / "flow.json"

GOOD = {
    "settings": {
        "apiKey": "key",
        "apiSecret": "s3cr3t-value",
        "userIdentities": {"customer_id": "user.id"},
    }
}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def write(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


# --- entry points ---------------------------------------------------------------------------


def test_main_without_click_says_how_to_install_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "click", None)  # makes ``import click`` fail

    assert main(["demo"]) == 2
    assert "pip install 'mparticle-dest[cli]'" in capsys.readouterr().err


def test_python_dash_m_runs_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mparticle_dest", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert done.returncode == 0
    assert __version__ in done.stdout


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["send", "--no-such-option"]) == 2


# --- validate -------------------------------------------------------------------------------


def test_validate_accepts_a_bare_config(runner: CliRunner, tmp_path: Path) -> None:
    path = write(tmp_path / "dest.json", GOOD)

    result = runner.invoke(cli, ["validate", "--config", str(path)])

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{path}: OK"


def test_validate_lists_every_problem_with_its_key_path(runner: CliRunner, tmp_path: Path) -> None:
    bad = {
        "settings": {"apiKey": "key", "apiSecret": "s", "pod": "us3"},
        "mapping": {"order": {"complete": {"settings": {"eventType": "purchase"}}}},
    }
    path = write(tmp_path / "bad.json", bad)

    result = runner.invoke(cli, ["validate", "-c", str(path)])

    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"{path}: 2 problems"
    assert any("settings.pod" in line and "us3" in line for line in lines[1:])
    assert any("eventType" in line and "purchase" in line for line in lines[1:])


def test_validate_reports_invalid_json_as_a_problem(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"settings": ', encoding="utf-8")

    result = runner.invoke(cli, ["validate", "-c", str(path)])

    assert result.exit_code == 1
    assert "not valid JSON" in result.stdout


def test_validate_picks_the_mparticle_destination_of_a_flow_file(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MPARTICLE_API_KEY", "key-from-env")
    monkeypatch.setenv("MPARTICLE_API_SECRET", "secret-from-env")

    result = runner.invoke(cli, ["validate", "--config", str(EXAMPLE_FLOW)])

    assert result.exit_code == 0, result.output
    assert "flows.default.destinations.mparticle.config" in result.stdout
    assert "credentials from MPARTICLE_API_KEY, MPARTICLE_API_SECRET" in result.stdout
    assert "secret-from-env" not in result.output


def test_validate_names_an_unset_env_reference(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MPARTICLE_API_KEY", raising=False)
    monkeypatch.delenv("MPARTICLE_API_SECRET", raising=False)

    result = runner.invoke(cli, ["validate", "--config", str(EXAMPLE_FLOW)])

    assert result.exit_code == 1
    assert (
        "flows.default.destinations.mparticle.config.settings.apiKey:"
        " environment variable MPARTICLE_API_KEY is not set"
    ) in result.stdout


def test_validate_unknown_destination_lists_the_available_ones(
    runner: CliRunner, tmp_path: Path
) -> None:
    flow = {
        "version": 3,
        "flows": {
            "default": {
                "destinations": {
                    "ga4": {"package": "@walkeros/web-destination-gtag", "config": {}},
                    "mp": {"package": "@walkeros/server-destination-mparticle", "config": GOOD},
                }
            }
        },
    }
    path = write(tmp_path / "flow.json", flow)

    result = runner.invoke(cli, ["validate", "-c", str(path), "-d", "nope"])

    assert result.exit_code == 1
    assert "no destination named 'nope' (found: ga4, mp)" in result.stdout


# --- config file shapes ---------------------------------------------------------------------


def read(path: Path, **kwargs: object) -> dict[str, object]:
    from mparticle_dest._cli.config import read_config_dict

    config, _source = read_config_dict(path, environ={}, **kwargs)  # type: ignore[arg-type]
    return config


def test_single_flow_shape_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "f.json", {"flow": {"destinations": {"mp": {"config": GOOD}}}})

    assert read(path) == GOOD


def test_multi_flow_needs_a_flow_name_when_the_destination_name_repeats(tmp_path: Path) -> None:
    from mparticle_dest import ConfigError

    other = {"settings": {**GOOD["settings"], "pod": "eu1"}}
    flows = {
        "flows": {
            "web": {"destinations": {"mp": {"package": "x-mparticle", "config": GOOD}}},
            "app": {"destinations": {"mp": {"package": "x-mparticle", "config": other}}},
        }
    }
    path = write(tmp_path / "f.json", flows)

    with pytest.raises(ConfigError, match="ambiguous destination"):
        read(path, destination="mp")
    assert read(path, destination="mp", flow="app") == other


def test_var_and_env_references_are_resolved(tmp_path: Path) -> None:
    from mparticle_dest._cli.config import read_config_dict

    flow = {
        "variables": {"pod": "eu1"},
        "flows": {
            "default": {
                "variables": {"env": "development"},
                "destinations": {
                    "mp": {
                        "config": {
                            "settings": {
                                "apiKey": "$env.KEY",
                                "apiSecret": "$env.SECRET:fallback",
                                "pod": "$var.pod",
                                "environment": "$var.env",
                            }
                        }
                    }
                },
            }
        },
    }
    path = write(tmp_path / "f.json", flow)

    config, source = read_config_dict(path, environ={"KEY": "k"})

    assert config == {
        "settings": {
            "apiKey": "k",
            "apiSecret": "fallback",
            "pod": "eu1",
            "environment": "development",
        }
    }
    assert source.location == "flows.default.destinations.mp.config"


def test_env_credentials_override_the_file(tmp_path: Path) -> None:
    from mparticle_dest._cli.config import read_config_dict

    path = write(tmp_path / "d.json", GOOD)

    config, source = read_config_dict(path, environ={"MPARTICLE_API_SECRET": "other"})

    assert config["settings"]["apiSecret"] == "other"
    assert config["settings"]["apiKey"] == "key"
    assert source.credentials_from_env == ("MPARTICLE_API_SECRET",)


def test_destination_option_on_a_bare_config_is_an_error(tmp_path: Path) -> None:
    from mparticle_dest import ConfigError

    path = write(tmp_path / "d.json", GOOD)

    with pytest.raises(ConfigError, match="bare destination config"):
        read(path, destination="mp")


# --- demo -----------------------------------------------------------------------------------


def test_demo_delivers_every_event_and_summarizes_what_the_server_received(
    runner: CliRunner,
) -> None:
    result = runner.invoke(cli, ["demo", "--users", "3", "--events", "30", "--waves", "2"])

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "30 events" in out
    assert "Received by mParticle (the fake)" in out
    assert "30 delivered" in out
    # Two bursts, each flushed: at least one bulk request per burst.
    assert out.count("POST /v2/bulkevents:") >= 2
    # The sample batch is real JSON as the server received it; the summary comes last.
    start = out.index("{", out.index("A batch as mParticle received it"))
    batch, end = json.JSONDecoder().raw_decode(out, start)
    assert out.index("Received by mParticle") > end
    assert out.splitlines()[-2].startswith("Next: map and batch the example events")
    assert batch["environment"] == "development"
    assert batch["user_identities"]["customer_id"].startswith("user-")
    assert {e["event_type"] for e in batch["events"]} <= {
        "custom_event",
        "screen_view",
        "commerce_event",
    }


def test_demo_stream_covers_custom_screen_and_commerce_events() -> None:
    from mparticle_dest._cli.demo import demo_events

    events = list(demo_events(4, 64))

    assert {e["user"]["id"] for e in events} == {"user-1", "user-2", "user-3", "user-4"}
    assert {e["name"] for e in events} == {
        "page view",
        "product add",
        "screen view",
        "order complete",
    }
    assert len({e["id"] for e in events}) == 64


def test_the_demos_next_step_runs_as_printed_from_the_repository_root(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)  # where the README leaves the user
    monkeypatch.delenv("MPARTICLE_API_KEY", raising=False)
    monkeypatch.delenv("MPARTICLE_API_SECRET", raising=False)
    result = runner.invoke(cli, ["demo", "--users", "2", "--events", "8", "--waves", "1"])
    command = result.stdout.splitlines()[-1].strip()

    done = subprocess.run(  # noqa: S602 - the demo's own hint, as a user pastes it
        command, shell=True, capture_output=True, text=True, timeout=60, check=False, cwd=REPO
    )

    assert done.returncode == 0, (command, done.stderr)
    batches = [json.loads(line) for line in done.stdout.splitlines()]
    assert sum(len(b["events"]) for b in batches) == 4  # the four of examples/events.jsonl
    assert "events built (dry run, nothing sent)" in done.stderr


def exit_status_table() -> dict[str, dict[str, str]]:
    """docs/cli.md's exit-status table: {command: {cell text: status}}."""
    text = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    block = text[text.index("**Exit status:**") :].split("\n\n")[1]
    rows = [
        [cell.strip().strip("`") for cell in line.strip("|").split("|")]
        for line in block.splitlines()
    ]
    header, body = rows[0], rows[2:]
    return {
        command: {row[i]: row[0] for row in body}
        for i, command in enumerate(header)
        if command != "status"
    }


def test_the_documented_exit_statuses_of_validate_are_what_it_returns(
    runner: CliRunner, tmp_path: Path
) -> None:
    good = write(tmp_path / "good.json", GOOD)
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    cells = exit_status_table()["validate"]
    status_of = {
        next(status for cell, status in cells.items() if cell.startswith(start)): argv
        for start, argv in [
            ("the config is valid", ["validate", "-c", str(good)]),
            ("the config has problems", ["validate", "-c", str(broken)]),
            ("usage error", ["validate", "-c", str(tmp_path / "missing.json")]),
        ]
    }

    assert set(status_of) == {"0", "1", "2"}
    for status, argv in status_of.items():
        assert runner.invoke(cli, argv).exit_code == int(status), argv
