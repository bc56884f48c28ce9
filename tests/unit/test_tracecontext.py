"""The W3C trace-context grammar (shared/core/tracecontext.py): which ``tracestate`` values are
passed on, and that everything passed on is a valid W3C list, whatever was sent."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.core.tracecontext import (
    MAX_TRACESTATE_CHARS,
    MAX_TRACESTATE_MEMBERS,
    parse_traceparent,
    valid_tracestate,
)

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    "state",
    [
        "rojo=00f067aa0ba902b7",
        "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",  # the W3C examples
        "rojo=1 , congo=2",  # optional blanks around the commas
        "a=1,,b=2",  # an empty member
        "tenant1@sys=v",  # a multi-tenant key
        "k*/_-=~!#",  # the key's and value's extra characters
        "k=a b",  # a blank inside a value
        ",".join(f"k{n}=v" for n in range(MAX_TRACESTATE_MEMBERS)),
    ],
)
def test_valid_states_are_kept_as_sent(state: str) -> None:
    assert valid_tracestate(state) == state
    parent = parse_traceparent(PARENT, state)
    assert parent is not None
    assert parent.tracestate == state


@pytest.mark.parametrize(
    "state",
    [
        '};{"x":1, <script>',
        "",
        ",",  # no member at all
        "Rojo=1",  # upper case key
        "1a=1",  # a simple key starts with a letter
        "rojo",  # no value
        "rojo=",  # an empty value
        "rojo=a=b",  # "=" in a value
        "rojo=\u00e9",  # not ASCII
        "a@B=1",  # upper case system id
        "a@" + "b" * 15 + "=1",  # system id over 14
        "a=1,a=2",  # a key twice
        "k=" + "v" * 257,
        ",".join(f"k{n}=v" for n in range(MAX_TRACESTATE_MEMBERS + 1)),
        "k=" + "v" * 200 + ",l=" + "v" * 200 + ",m=" + "v" * 200,  # over 512 in all
    ],
)
def test_invalid_states_are_dropped_as_a_whole(state: str) -> None:
    assert valid_tracestate(state) is None
    parent = parse_traceparent(PARENT, state)
    assert parent is not None  # the trace still continues
    assert parent.tracestate is None


def test_a_state_is_only_kept_with_a_valid_traceparent() -> None:
    assert parse_traceparent("garbage", "a=1") is None


_W3C_MEMBER = re.compile(
    r"(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})"
    r"=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
)


@given(
    st.lists(
        st.from_regex(r"[a-z0-9@]{1,6}", fullmatch=True) | st.text(max_size=6) | st.just(""),
        max_size=6,
    ).map(lambda parts: "=".join(parts))
    | st.lists(st.text(alphabet="ab=@ ,\t*/_-~é", max_size=8), max_size=40).map(",".join)
)
def test_whatever_is_kept_is_a_valid_w3c_list(value: str) -> None:
    kept = valid_tracestate(value)
    if kept is None:
        return
    assert len(kept) <= MAX_TRACESTATE_CHARS
    members = [member.strip(" \t") for member in kept.split(",")]
    assert len(members) <= MAX_TRACESTATE_MEMBERS
    present = [member for member in members if member]
    assert present
    assert all(_W3C_MEMBER.fullmatch(member) for member in present), kept
    keys = [member.split("=", 1)[0] for member in present]
    assert len(keys) == len(set(keys))
