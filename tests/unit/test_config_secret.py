"""The API secret never shows in a repr, str, error message or dump (SPEC §8)."""

from __future__ import annotations

import copy
import logging
import pickle
from typing import Any

import pytest

from mparticle_dest._config.model import DestinationConfig, Secret, Settings
from mparticle_dest._exceptions import ConfigError

SECRET = "hunter2-very-secret"


def test_secret_masks_itself_in_every_text_form() -> None:
    secret = Secret(SECRET)
    assert repr(secret) == "Secret('***')"
    assert str(secret) == "Secret('***')"
    assert f"{secret}" == "Secret('***')"
    assert "%s %r" % (secret, secret) == "Secret('***') Secret('***')"  # noqa: UP031
    assert secret.get_secret_value() == SECRET


def test_secret_equality_hashing_and_copies_keep_the_value() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"
    assert len({Secret("a"), Secret("a")}) == 1
    for clone in (
        copy.copy(Secret("a")),
        copy.deepcopy(Secret("a")),
        pickle.loads(pickle.dumps(Secret("a"))),  # noqa: S301 - our own bytes
    ):
        assert clone.get_secret_value() == "a"


def test_secret_rejects_non_strings_without_echoing_them() -> None:
    with pytest.raises(TypeError) as info:
        Secret(12345678)  # type: ignore[arg-type]
    assert str(info.value) == "Secret expects a string, got int"


def test_settings_accept_a_plain_string_or_a_secret() -> None:
    assert Settings(api_key="k", api_secret=SECRET) == Settings(
        api_key="k", api_secret=Secret(SECRET)
    )
    assert isinstance(Settings(api_key="k", api_secret=SECRET).api_secret, Secret)


def config() -> DestinationConfig:
    return DestinationConfig.from_dict({"settings": {"apiKey": "key", "apiSecret": SECRET}})


def test_no_repr_or_dump_contains_the_secret() -> None:
    built = config()
    for text in (repr(built), str(built), repr(built.settings), str(built.to_dict())):
        assert SECRET not in text
    assert "api_secret=Secret('***')" in repr(built.settings)
    assert built.to_dict()["settings"]["apiSecret"] == "***"


def test_logs_of_building_a_config_never_carry_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        DestinationConfig.from_dict(
            {"settings": {"apiKey": "key", "apiSecret": SECRET}, "onError": print, "id": "x"}
        )
    assert caplog.records
    assert SECRET not in caplog.text


@pytest.mark.parametrize(
    "settings",
    [
        {"apiKey": "key", "apiSecret": SECRET, "pod": SECRET},
        {"apiKey": "key", "apiSecret": SECRET, "environment": SECRET, "apiKye": 1},
        {"apiKey": "key", "apiSecret": SECRET, "userIdentities": {SECRET: "user.id"}},
        {"apiKey": "key", "apiSecret": SECRET, "limits": {"eventName": SECRET}},
    ],
)
def test_error_messages_never_echo_the_secret(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        DestinationConfig.from_dict({"settings": settings})
    assert SECRET not in str(info.value)
    assert "***" in str(info.value)


@pytest.mark.parametrize("value", [12345678, ["a", "list"], {"secret": "x"}])
def test_a_secret_of_the_wrong_type_is_reported_by_type_only(value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        DestinationConfig.from_dict({"settings": {"apiKey": "key", "apiSecret": value}})
    assert info.value.problems == (
        f"settings.apiSecret: expected a string, got {type(value).__name__}",
    )
    assert str(value) not in str(info.value)
