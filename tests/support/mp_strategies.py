"""Hypothesis strategies for the typed mParticle models (``mparticle_dest._mparticle.models``).

``model_strategy(cls)`` draws valid instances of any model class, reading the field
types from the class annotations, so the strategies follow the models as they change.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Union

import attrs
from hypothesis import strategies as st

__all__ = ["json_values", "model_strategy"]

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**53), 2**53),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=8),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


def _strategy(tp: Any) -> st.SearchStrategy[Any]:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return st.one_of(*(_strategy(a) for a in args))
    if origin is Literal:
        return st.sampled_from(args)
    if origin is list:
        return st.lists(_strategy(args[0]), max_size=2)
    if origin is dict:
        return st.dictionaries(_strategy(args[0]), _strategy(args[1]), max_size=3)
    if tp is type(None):
        return st.none()
    if tp is Any:
        return json_values.filter(lambda v: v is not None)
    if isinstance(tp, type) and attrs.has(tp):
        return model_strategy(tp)
    return {
        str: st.text(max_size=10),
        int: st.integers(-(2**53), 2**53),
        # Bounded doubles rather than width=32: hypothesis rejects draws while narrowing to
        # 32 bits, and the note it then writes holds the strategy's repr, which for a batch
        # with device_info's 47 fields runs past 30 kB (a warning, an error in this suite).
        float: st.floats(-(2.0**53), 2.0**53, allow_nan=False),
        bool: st.booleans(),
    }[tp]


def model_strategy(cls: type) -> st.SearchStrategy[Any]:
    """Draw valid instances of the attrs model ``cls`` (optional fields sometimes set)."""
    hints = typing.get_type_hints(cls)
    return st.builds(cls, **{f.name: _strategy(hints[f.name]) for f in attrs.fields(cls)})
