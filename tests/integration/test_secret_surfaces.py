"""The API secret and the Authorization value stay out of every user-facing surface.

The engine's own run is covered in ``test_destination_lifecycle``; these cover the
other surfaces a secret could leak through: the ``send`` command (its output, its
rejects file, the DEBUG log of every logger) when mParticle refuses the credentials,
``validate`` on a broken config that holds a literal secret, and the
``SyncDestination`` facade (reprs, receipts, the close report, errors).
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from mparticle_dest import SyncDestination
from mparticle_dest._cli.main import cli
from mparticle_dest.testing import FakeMparticle

SECRET = "s3cr3t-VALUE-7c1e"
TOKEN = base64.b64encode(f"test-key:{SECRET}".encode()).decode()


def _config(**settings: object) -> dict[str, object]:
    return {
        "settings": {
            "apiKey": "test-key",
            "apiSecret": SECRET,
            "userIdentities": {"customer_id": "user.id"},
            **settings,
        }
    }


def _assert_clean(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text
        assert TOKEN not in text


def test_send_refused_by_mparticle_leaks_the_secret_nowhere(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    config = tmp_path / "dest.json"
    config.write_text(json.dumps(_config()), encoding="utf-8")
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(
            json.dumps({"name": "page view", "id": f"ev-{n}", "user": {"id": f"u{n % 3}"}}) + "\n"
            for n in range(6)
        ),
        encoding="utf-8",
    )

    with FakeMparticle(api_secret="the-right-secret") as server:
        result = CliRunner().invoke(
            cli, ["send", str(events), "-c", str(config), "--base-url", server.url]
        )
        recorded = [repr(r) for r in server.requests]

    assert result.exit_code == 1, result.output
    rejects = (tmp_path / "events.jsonl.rejects.jsonl").read_text(encoding="utf-8")
    assert [json.loads(line)["stage"] for line in rejects.splitlines()] == ["delivery"] * 6
    assert "refused the credentials" in rejects
    _assert_clean(result.output, result.stderr, rejects, caplog.text, *recorded)


def test_validate_of_a_broken_config_never_prints_its_secret(tmp_path: Path) -> None:
    config = tmp_path / "dest.json"
    config.write_text(json.dumps(_config(pod="us3", environment=SECRET)), encoding="utf-8")

    result = CliRunner().invoke(cli, ["validate", "-c", str(config)])

    assert result.exit_code == 1
    assert "settings.pod" in result.output
    assert "settings.environment" in result.output
    _assert_clean(result.output, result.stderr)


def test_sync_destination_reprs_receipts_report_and_errors_hold_no_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeMparticle(api_secret="the-right-secret") as server:
        dest = SyncDestination(_config(), base_url=server.url)
        receipt = dest.push({"name": "page view", "user": {"id": "u1"}})
        texts = [repr(dest), repr(receipt)]
        report = dest.close()
        outcome = receipt.result(timeout=5)

    assert outcome.status == "failed"
    assert outcome.reason == "authentication"
    texts += [repr(dest), repr(receipt), repr(outcome), str(outcome.error), repr(report)]
    assert dest.stats == report.stats  # the final counters stay readable after close
    texts += [repr(report.stats)]
    _assert_clean(*texts, caplog.text)
