"""W3C trace context: the ``traceparent`` a publish continues, and the ids of the spans it makes.

Every publish gets ids whether or not anything records its spans: the caller's trace continues
when it sent a valid ``traceparent`` (or, under the Functions host, the host's invocation span is
the parent), and a new trace starts otherwise. A problem's ``traceId`` and a queued event's
``traceparent`` name these ids (docs/contract.md, "Trace context").
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
#: Ids need to be unique, not secret: a seeded PRNG, not a system call per request.
_ids = random.Random()  # noqa: S311
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
#: tracestate (W3C Trace Context, section 3.3): a list of ``key=value`` members separated by
#: commas with optional blanks around them; a key is a simple key or ``tenant@system``; a value
#: is up to 256 printable ASCII characters other than ``,`` and ``=``, not ending in a blank.
_KEY = re.compile(
    r"[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13}"
)
_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
#: At most 32 list members (W3C), and 512 characters in all: what a vendor must pass on.
MAX_TRACESTATE_MEMBERS = 32
MAX_TRACESTATE_CHARS = 512


@dataclass(frozen=True, slots=True)
class Parent:
    """The trace a publish continues: the caller's (or the Functions host's) span."""

    trace_id: str
    span_id: str
    sampled: bool
    tracestate: str | None = None


def parse_traceparent(value: str | None, tracestate: str | None = None) -> Parent | None:
    """A valid W3C ``traceparent`` (version 00, or a later one read as 00), else None."""
    if not value:
        return None
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE:
        return None
    if span_id == _ZERO_SPAN:
        return None
    return Parent(trace_id, span_id, bool(int(flags, 16) & 1), valid_tracestate(tracestate))


def valid_tracestate(value: object) -> str | None:
    """A ``tracestate`` as sent (its outer blanks stripped) when it is valid under the W3C
    grammar, else None: an invalid one is dropped as a whole, never repaired. Valid means at
    most 32 list members and 512 characters, each member a ``key=value`` (or empty), and each
    key at most once."""
    if not isinstance(value, str):
        return None
    state = value.strip(" \t")
    if not state or len(state) > MAX_TRACESTATE_CHARS:
        return None
    members = state.split(",")
    if len(members) > MAX_TRACESTATE_MEMBERS:
        return None
    keys: set[str] = set()
    for member in members:
        member = member.strip(" \t")
        if not member:
            continue
        key, equals, rest = member.partition("=")
        if not equals or not _KEY.fullmatch(key) or not _VALUE.fullmatch(rest) or key in keys:
            return None
        keys.add(key)
    return state if keys else None


@dataclass(frozen=True, slots=True)
class TraceIds:
    """A span's W3C ids: what a problem's ``traceId`` and an event's ``traceparent`` name."""

    trace_id: str
    span_id: str
    sampled: bool

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"

    @property
    def problem_trace_id(self) -> str:
        """A problem's ``traceId``: ``00-<trace>-<span>-00``."""
        return f"00-{self.trace_id}-{self.span_id}-00"

    def as_parent(self) -> Parent:
        return Parent(self.trace_id, self.span_id, self.sampled)


def new_ids(parent: Parent | None) -> TraceIds:
    """Ids of a new span, in the parent's trace when there is one."""
    span_id = f"{_ids.getrandbits(64):016x}"
    if parent is None:
        return TraceIds(f"{_ids.getrandbits(128):032x}", span_id, True)
    return TraceIds(parent.trace_id, span_id, parent.sampled)


def trace_id_of(headers: Mapping[str, str]) -> str:
    """A new span's ``traceId`` in the trace of the caller's ``traceparent`` (or a new one)."""
    parent = parse_traceparent(headers.get("traceparent"), headers.get("tracestate"))
    return new_ids(parent).problem_trace_id
