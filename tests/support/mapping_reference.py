"""A deliberately simple interpreter of the mapping language, for property tests only.

Written straight from SPEC §4 (plus the decisions in docs/decisions.md), with no
compilation and no speed tricks: it walks the spec for every value. The library's
compiled closures must give exactly the same results.
"""

from __future__ import annotations

import copy
import inspect
import math
from typing import Any

__all__ = ["ref_get_path", "ref_json", "ref_process", "ref_value"]

_BAD = object()


def ref_json(value: Any) -> Any:
    """A fresh JSON-like copy; ``None`` when ``value`` is not JSON-like."""
    result = _json(value)
    return None if result is _BAD else result


def _json(value: Any) -> Any:
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _BAD
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                return _BAD
            copied = _json(item)
            if copied is _BAD:
                return _BAD
            out[key] = copied
        return out
    if isinstance(value, (list, tuple)):
        items = [_json(item) for item in value]
        return _BAD if any(item is _BAD for item in items) else items
    return _BAD


def _truthy(value: Any) -> bool:
    # JavaScript truthiness: only None, False, 0 and "" are falsy.
    return not (value is None or value is False or value == "" or value == 0) or value is True


def _read(obj: Any, segment: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(segment)
    if isinstance(obj, (list, tuple)):
        canonical = segment.isdigit() and str(int(segment)) == segment
        if canonical and int(segment) < len(obj):
            return obj[int(segment)]
    return None


def ref_get_path(obj: Any, path: str, default: Any = None) -> Any:
    """Read a dot path; ``*`` over a list maps the rest of the path over its elements."""
    segments = path.split(".")
    current = obj
    for position, segment in enumerate(segments):
        if segment == "*" and isinstance(current, (list, tuple)):
            rest = ".".join(segments[position + 1 :])
            if position + 1 == len(segments):
                return [default if item is None else item for item in current]
            return [ref_get_path(item, rest, default) for item in current]
        current = _read(current, segment)
        if current is None:
            return default
    return current


def _call(fn: Any, value: Any, ctx: dict[str, Any]) -> Any:
    params = [
        p
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    try:
        return fn(value, ctx) if len(params) >= 2 else fn(value)
    except Exception:
        return None


def ref_value(value: Any, spec: Any, ctx: dict[str, Any]) -> Any:
    """A value mapping: a list is a fallback chain (first result that is not None)."""
    if value is None:
        return None
    for item in spec if isinstance(spec, list) else [spec]:
        result = _item(value, item, ctx)
        if result is not None:
            return result
    return None


def _item(value: Any, spec: Any, ctx: dict[str, Any]) -> Any:
    # An item that is a list: the first truthy result, else the last result.
    if not isinstance(spec, list):
        return _leaf(value, spec, ctx)
    result = None
    for leaf in spec:
        result = _leaf(value, leaf, ctx)
        if _truthy(result):
            return result
    return result


def _leaf(value: Any, spec: Any, ctx: dict[str, Any]) -> Any:
    if isinstance(spec, str):
        spec = {"key": spec}
    if not spec:
        return None
    static = spec.get("value")
    if "condition" in spec and not _call(spec["condition"], value, ctx):
        return None
    if "consent" in spec:
        state = ctx.get("consent") or {}
        wanted = [group for group, flag in spec["consent"].items() if _truthy(flag)]
        if not any(_truthy(state.get(group)) for group in wanted):
            return ref_json(static)
    result = static if "value" in spec else value
    if "fn" in spec:
        result = _call(spec["fn"], value, ctx)
    if spec.get("key"):
        result = ref_get_path(value, spec["key"], static)
    if "loop" in spec:
        source, each = spec["loop"]
        items = [value] if source == "this" else ref_value(value, source, ctx)
        if isinstance(items, list):
            mapped = [ref_value(item, each, ctx) for item in items if item is not None]
            result = [item for item in mapped if item is not None]
        else:
            result = None
    elif "map" in spec:
        mapped = {key: ref_value(value, sub, ctx) for key, sub in spec["map"].items()}
        result = {key: item for key, item in mapped.items() if item is not None}
    elif "set" in spec:
        result = [_item(value, sub, ctx) for sub in spec["set"]]
    if "validate" in spec and not _call(spec["validate"], result, ctx):
        result = None
    result = ref_json(result)
    return ref_json(static) if result is None else result


# -- event processing -----------------------------------------------------------------------


def _consent(event: dict[str, Any]) -> dict[str, Any] | None:
    state = event.get("consent")
    return state if isinstance(state, dict) else None


def _granted(required: dict[str, Any] | None, event: dict[str, Any]) -> bool:
    if required is None:
        return True
    state = _consent(event) or {}
    return any(_truthy(flag) and _truthy(state.get(group)) for group, flag in required.items())


def _set(event: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    # Deep copy, then write: slow and obviously correct.
    root = copy.deepcopy(event)
    parts = path.split(".")
    current = root
    for part in parts[:-1]:
        if not isinstance(current.get(part), dict):
            if value is None:
                return root
            current[part] = {}
        current = current[part]
    if value is None:
        current.pop(parts[-1], None)
    else:
        current[parts[-1]] = value
    return root


def _policy(event: dict[str, Any], policy: dict[str, Any] | None) -> dict[str, Any]:
    if not policy:
        return event
    ctx = {"consent": _consent(event)}
    values = [(path, ref_value(event, spec, ctx)) for path, spec in policy.items()]
    for path, value in values:
        event = _set(event, path, value)
    return event


def _find_rule(event: dict[str, Any], rules: dict[str, Any]) -> tuple[Any, str]:
    name = event.get("name")
    words = name.split(" ") if isinstance(name, str) else []
    if len(words) < 2 or not words[0] or not words[1]:
        return None, ""
    tried = []
    entity = words[0] if words[0] in rules else "*"
    if entity in rules:
        action = words[1] if words[1] in rules[entity] else "*"
        tried.append((entity, action))
    if ("*", "*") not in tried:
        tried.append(("*", "*"))
    for entity, action in tried:
        candidates = rules.get(entity, {}).get(action)
        if candidates is None:
            continue
        for rule in candidates if isinstance(candidates, list) else [candidates]:
            condition = rule.get("condition")
            if condition is None or _call(condition, event, {"consent": _consent(event)}):
                return rule, f"{entity} {action}"
    return None, ""


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}_{key}", item, out)
    elif value is not None and ref_json(value) is not None:
        out[prefix] = ref_json(value)


def _include(event: dict[str, Any], sections: list[str]) -> dict[str, Any]:
    if "all" in sections:
        sections = ["data", "globals", "context", "user", "source", "event"]
    out: dict[str, Any] = {}
    for section in sections:
        if section == "event":
            keys = ("entity", "action", "id", "timestamp", "name", "trigger", "timing")
            bag = {key: event.get(key) for key in keys}
        else:
            bag = event.get(section)
        if not isinstance(bag, dict):
            continue
        for key, raw in bag.items():
            if section == "context" and isinstance(raw, list):
                raw = raw[0] if raw else None
            _flatten(f"{section}_{key}", raw, out)
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(out.get(key), list) and isinstance(value, list):
            value = out[key] + [item for item in value if not _contains(out[key], item)]
        out[key] = value
    return out


def _contains(items: list[Any], item: Any) -> bool:
    for existing in items:
        if isinstance(existing, (dict, list)) or isinstance(item, (dict, list)):
            if existing is item:
                return True
        elif isinstance(existing, bool) == isinstance(item, bool) and existing == item:
            return True
    return False


def _remove(data: dict[str, Any], path: str) -> None:
    parts = path.split(".")
    current: Any = data
    for part in parts[:-1]:
        current = _read(current, part)
    if isinstance(current, dict):
        current.pop(parts[-1], None)
    elif isinstance(current, list) and _read(current, parts[-1]) is not None:
        del current[int(parts[-1])]


def ref_process(event: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Map an event with a plain-dict config; returns the result fields as a dict."""
    out = {"rule": None, "mapping_key": "", "skipped": None, "data": None}
    if not _granted(config.get("consent"), event):
        return {**out, "skipped": "consent", "event": event}
    event = _policy(event, config.get("policy"))
    rule, key = _find_rule(event, config.get("mapping") or {})
    out.update(rule=rule, mapping_key=key)
    if rule is not None and not _granted(rule.get("consent"), event):
        return {**out, "skipped": "consent", "event": event}
    if rule is not None:
        event = _policy(event, rule.get("policy"))
    ctx = {"consent": _consent(event)}
    data = ref_value(event, config["data"], ctx) if config.get("data") else None
    if rule is not None:
        if rule.get("ignore"):
            return {**out, "skipped": "ignore", "event": event, "data": data}
        if rule.get("name"):
            event = {**event, "name": rule["name"]}
        if rule.get("data") not in (None, ""):
            produced = ref_value(event, rule["data"], ctx)
            both = isinstance(data, dict) and isinstance(produced, dict)
            data = _merge(data, produced) if both else produced
    sections = config.get("include")
    if rule is not None and rule.get("include") is not None:
        sections = rule["include"]
    if sections:
        included = _include(event, sections)
        if included and isinstance(data, dict):
            data = _merge(included, data)
        elif included and data is None:
            data = included
    if rule is not None and isinstance(data, dict):
        for path in rule.get("remove") or []:
            _remove(data, path)
    return {**out, "event": event, "data": data}
