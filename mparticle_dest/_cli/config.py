"""Load the destination config the command line works with.

A config file is either a bare destination config (``{"settings": ..., "mapping":
...}``) or a walkerOS ``flow.json`` holding it at
``flows.<flow>.destinations.<name>.config`` (multi-flow files, ``"version": 3`` and
later), ``flow.destinations.<name>.config`` (single-flow files) or
``destinations.<name>.config`` (a flow on its own). Whole-string walkerOS references
``$env.NAME``, ``$env.NAME:default`` and ``$var.name`` are resolved, and the
``MPARTICLE_API_KEY`` / ``MPARTICLE_API_SECRET`` environment variables fill or
override the credentials.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attrs import frozen

from .._config import DestinationConfig
from .._exceptions import ConfigError

__all__ = ["ENV_API_KEY", "ENV_API_SECRET", "ConfigSource", "build_config", "read_config_dict"]

ENV_API_KEY = "MPARTICLE_API_KEY"
ENV_API_SECRET = "MPARTICLE_API_SECRET"  # noqa: S105 - a variable name, not a secret

_ENV_REF = re.compile(r"^\$env\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<default>.*))?$", re.S)
_VAR_REF = re.compile(r"^\$var\.(?P<name>[A-Za-z0-9_.-]+)$")


@frozen
class ConfigSource:
    """Where a destination config came from, for messages.

    Attributes:
        path: The file.
        location: The key path inside the file (``flows.default.destinations.mp.config``),
            or ``""`` for a bare destination config.
        credentials_from_env: The environment variables that supplied credentials.
    """

    path: Path
    location: str
    credentials_from_env: tuple[str, ...] = ()

    def describe(self) -> str:
        """A one-line description such as ``flow.json (flows.default.destinations.mp)``."""
        where = f"{self.path} ({self.location})" if self.location else str(self.path)
        if self.credentials_from_env:
            where += f", credentials from {', '.join(self.credentials_from_env)}"
        return where


def read_config_dict(
    path: Path,
    *,
    destination: str | None = None,
    flow: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], ConfigSource]:
    """Read ``path`` and return the selected destination config as a dict.

    Args:
        path: A bare destination config or a walkerOS ``flow.json``.
        destination: The destination name inside a flow file. Optional when the file
            holds exactly one destination, or exactly one whose package names mParticle.
        flow: The flow name in a multi-flow file, when the destination name is ambiguous.
        environ: Environment for ``$env`` references and credentials (default: ``os.environ``).

    Returns:
        The destination config dict (references resolved, credentials applied) and
        where it came from.

    Raises:
        ConfigError: The file cannot be read or parsed, the destination cannot be
            found, or a reference cannot be resolved.
    """
    env = os.environ if environ is None else environ
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError([f"{path}: not valid JSON: {exc}"]) from exc
    if not isinstance(document, dict):
        raise ConfigError([f"{path}: expected a JSON object, got {type(document).__name__}"])

    location, config, variables = _select(document, destination=destination, flow=flow)
    if not isinstance(config, dict):
        where = location or "$"
        raise ConfigError([f"{where}: expected a destination config object"])
    problems: list[str] = []
    config = _resolve_refs(config, variables, env, location or "", problems)
    if problems:
        raise ConfigError(problems)
    from_env = _apply_credentials(config, env)
    return config, ConfigSource(path, location, from_env)


def build_config(raw: Mapping[str, Any]) -> DestinationConfig:
    """Build the typed config and check the settings' value mappings.

    Raises:
        ConfigError: Every problem, with its key path inside the destination config.
    """
    from .._payload import EventBuilder

    config = DestinationConfig.from_dict(dict(raw))
    EventBuilder.from_config(config)
    return config


_Candidate = tuple[str, str, Any, dict[str, Any]]  # location, name, entry, flow variables


def _select(
    document: dict[str, Any], *, destination: str | None, flow: str | None
) -> tuple[str, Any, dict[str, Any]]:
    """Pick the destination config out of a flow file (or return a bare config)."""
    variables = dict(document.get("variables") or {})
    candidates: list[_Candidate] = []
    if isinstance(document.get("flows"), dict):
        flows = document["flows"]
        if flow is not None and flow not in flows:
            raise ConfigError([f"flows: no flow named {flow!r} (found: {_names(flows)})"])
        for flow_name, flow_doc in flows.items():
            if flow is not None and flow_name != flow:
                continue
            if isinstance(flow_doc, dict):
                candidates += _destinations(flow_doc, f"flows.{flow_name}.")
    elif isinstance(document.get("flow"), dict):
        candidates = _destinations(document["flow"], "flow.")
    elif isinstance(document.get("destinations"), dict):
        candidates = _destinations(document, "")
    else:
        if destination is not None or flow is not None:
            raise ConfigError(
                ["the file is a bare destination config; --destination/--flow apply to flow files"]
            )
        return "", document, variables

    location, _name, entry, flow_variables = _choose(candidates, destination)
    if not isinstance(entry, dict):
        raise ConfigError([f"{location}: expected an object with 'package' and 'config'"])
    variables.update(flow_variables)
    return f"{location}.config", entry.get("config", {}), variables


def _destinations(flow_doc: dict[str, Any], prefix: str) -> list[_Candidate]:
    destinations = flow_doc.get("destinations")
    if not isinstance(destinations, dict):
        return []
    flow_variables = flow_doc.get("variables")
    flow_variables = dict(flow_variables) if isinstance(flow_variables, dict) else {}
    return [
        (f"{prefix}destinations.{name}", name, entry, flow_variables)
        for name, entry in destinations.items()
    ]


def _choose(candidates: list[_Candidate], destination: str | None) -> _Candidate:
    if not candidates:
        raise ConfigError(["the flow file defines no destinations"])
    available = ", ".join(sorted({c[1] for c in candidates}))
    if destination is not None:
        matching = [c for c in candidates if c[1] == destination]
        if not matching:
            raise ConfigError([f"no destination named {destination!r} (found: {available})"])
    elif len(candidates) == 1:
        matching = candidates
    else:
        matching = [c for c in candidates if _is_mparticle(c[2])]
        if not matching:
            raise ConfigError(
                [
                    "several destinations, none of them mParticle; pick one with"
                    f" --destination (found: {available})"
                ]
            )
    if len(matching) > 1:
        where = ", ".join(c[0] for c in matching)
        raise ConfigError([f"ambiguous destination ({where}); pick one with --destination/--flow"])
    return matching[0]


def _is_mparticle(entry: Any) -> bool:
    if not isinstance(entry, dict):
        return False
    return any("mparticle" in str(entry.get(k, "")).lower() for k in ("package", "code"))


def _names(mapping: Mapping[str, Any]) -> str:
    return ", ".join(sorted(mapping)) or "none"


def _resolve_refs(
    value: Any,
    variables: Mapping[str, Any],
    env: Mapping[str, str],
    path: str,
    problems: list[str],
) -> Any:
    """Replace whole-string ``$env``/``$var`` references, recording unresolvable ones."""
    if isinstance(value, dict):
        return {
            k: _resolve_refs(v, variables, env, f"{path}.{k}" if path else k, problems)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _resolve_refs(v, variables, env, f"{path}.{i}", problems) for i, v in enumerate(value)
        ]
    if isinstance(value, str):
        if (match := _ENV_REF.match(value)) is not None:
            name, default = match["name"], match["default"]
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(f"{path}: environment variable {name} is not set")
        elif (match := _VAR_REF.match(value)) is not None:
            if match["name"] in variables:
                return variables[match["name"]]
            problems.append(f"{path}: variable {match['name']!r} is not defined")
    return value


def _apply_credentials(config: dict[str, Any], env: Mapping[str, str]) -> tuple[str, ...]:
    """Let ``MPARTICLE_API_KEY``/``MPARTICLE_API_SECRET`` fill or override the settings."""
    used: list[str] = []
    for var, key in ((ENV_API_KEY, "apiKey"), (ENV_API_SECRET, "apiSecret")):
        value = env.get(var)
        if value:
            settings = config.setdefault("settings", {})
            if isinstance(settings, dict):
                settings[key] = value
                used.append(var)
    return tuple(used)
