"""``base_url`` is checked at construction, and a URL password never shows (#16)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from mparticle_dest import Destination, SyncDestination
from mparticle_dest._cli.main import cli
from mparticle_dest.testing import FakeMparticle

PASSWORD = "hunter2-PASSWORD-91c"  # the value that must never show
CONFIG = {"settings": {"apiKey": "test-key", "apiSecret": "test-secret"}}


@pytest.mark.parametrize(
    ("base_url", "error", "problem"),
    [
        (5, TypeError, "base_url must be a string, got int"),
        (b"http://127.0.0.1", TypeError, "got bytes"),
        ("http://", ValueError, "has no host"),
        ("https://:8080/mp", ValueError, "has no host"),
        ("http://127.0.0.1/mp\r\nX-Injected: 1", ValueError, "control characters"),
        ("http://127.0.0.1/m p", ValueError, "whitespace"),
        ("http://127.0.0.1\t", ValueError, "whitespace"),
        ("127.0.0.1:8080", ValueError, "must start with http:// or https://"),
        ("ftp://127.0.0.1", ValueError, "must start with http:// or https://"),
        ("http:/127.0.0.1", ValueError, "must start with http:// or https://"),
        ("http://127.0.0.1:99999", ValueError, "invalid port"),
        ("http://[::1", ValueError, "not a valid URL"),
        ("http://127.0.0.1/mp?key=1", ValueError, "query"),
        ("http://127.0.0.1/mp#frag", ValueError, "fragment"),
        ("http://127.0.0.1/mp?", ValueError, "query"),
    ],
)
def test_bad_base_urls_are_refused_at_construction_naming_the_problem(
    base_url: object, error: type[Exception], problem: str
) -> None:
    with pytest.raises(error, match="base_url") as info:
        Destination(CONFIG, base_url=base_url)  # type: ignore[arg-type]
    assert problem in str(info.value)


@pytest.mark.parametrize(
    "base_url",
    [
        f"http://user:{PASSWORD}@127.0.0.1:8080",
        f"https://user:{PASSWORD}@proxy.example/mp",
        f"http://{PASSWORD}@127.0.0.1",
        f"http://user:{PASSWORD}@[::1]:8080/mp",
    ],
)
def test_credentials_in_base_url_are_refused_without_echoing_them(
    base_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ValueError, match=r"credentials \(user:password@\).*settings") as info:
        Destination(CONFIG, base_url=base_url)
    with pytest.raises(ValueError, match="credentials") as sync_info:
        SyncDestination(CONFIG, base_url=base_url)
    texts = [str(info.value), repr(info.value), str(sync_info.value), caplog.text]
    assert not any(PASSWORD in text for text in texts)


def test_good_base_urls_are_accepted_and_used_with_their_path_prefix() -> None:
    for base_url in (
        "http://127.0.0.1:8080",
        "HTTPS://Proxy.Example/mp/",
        "http://[::1]:8080/mp",
        "https://s2s.eu1.mparticle.com",
    ):
        dest = Destination(CONFIG, base_url=base_url)
        assert repr(dest).startswith(f"<Destination unopened url='{base_url.rstrip('/')}/v2/")


@pytest.mark.anyio
async def test_no_url_with_credentials_reaches_any_log(caplog: pytest.LogCaptureFixture) -> None:
    # httpx logs every request URL at INFO; with credentials refused up front, the
    # URLs logged while delivering are the plain ones.
    caplog.set_level(logging.DEBUG)
    async with FakeMparticle() as server:
        async with Destination(CONFIG, base_url=server.url) as dest:
            receipt = await dest.push({"name": "page view"})
        assert (await receipt).delivered
    urls = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert urls and all(f"POST {server.url}/v2/bulkevents" in text for text in urls)
    assert "@" not in caplog.text


def test_cli_refuses_credentials_in_base_url_as_a_usage_error(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps({"name": "page view"}) + "\n", encoding="utf-8")
    config = tmp_path / "config.json"
    config.write_text(json.dumps(CONFIG), encoding="utf-8")
    result = CliRunner().invoke(
        cli,
        ["send", str(events), "--config", str(config), "--base-url", f"http://u:{PASSWORD}@h"],
    )
    assert result.exit_code == 2
    assert "credentials" in result.output
    assert PASSWORD not in result.output
