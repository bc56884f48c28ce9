"""The CloudEvents JSON format: strict decoding of request bytes, compact encoding of events.

``json.loads`` is lenient where a receiver must not be: it accepts ``NaN``, keeps the last of two
duplicate keys (so two code paths could see two different ``resource`` values), and fails with
``RecursionError`` on deep nesting. ``decode_json`` closes each of those gaps while keeping the
C scanner on the hot path.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

import jiter
import orjson
import rfc8785

from shared.cloudevents.event import (
    DATA,
    DATA_BASE64,
    CloudEvent,
    ExtensionProfile,
    InvalidEvent,
    event_from_members,
)

#: Deepest nesting accepted inside ``data`` (the event object itself is one level above it).
MAX_DATA_DEPTH = 64
_UTF8_BOM = "\ufeff"


class JsonFormatError(ValueError):
    """The bytes are not one strict RFC 8259 JSON text. ``str()`` is a message for publishers."""


class _DuplicateKey(ValueError):
    pass


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


def _reject_constant(name: str) -> Any:
    raise JsonFormatError(
        f"'{name}' is not valid JSON (RFC 8259 has no NaN or Infinity); send a number or a string"
    )


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e400: valid JSON, but no double can hold it
        raise JsonFormatError(
            f"The number {text[:40]} is too large to represent (beyond about 1.8e308)"
        )
    return value


_DECODER = json.JSONDecoder(
    object_pairs_hook=_reject_duplicates,
    parse_constant=_reject_constant,
    parse_float=_finite_float,
)
_FALLBACK_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


#: With every digit mapped to "0", "E" to "e" and "+" left out, a number that may not fit in a
#: double has a three-digit exponent or 309 digits in a row (strings may match too: that costs
#: only the slower decoder).
_EXPONENT_MARK = b"e000"
_DIGITS_MARK = b"0" * 309
_NUMBER_SHAPES = bytes.maketrans(b"123456789E", b"000000000e")


def decode_json(body: bytes) -> Any:
    """Decode one JSON text from UTF-8 bytes, refusing anything RFC 8259 does not allow.

    jiter (Rust) decodes the common body in one pass with every check but one: it refuses
    duplicate member names, ``NaN``/``Infinity``, invalid UTF-8 and lone surrogates, and keeps
    big integers exact, but reads a number beyond a double as infinity. A body that might hold
    such a number (a three-digit exponent, or 309 digits in a row), and any body jiter refuses,
    goes through the strict decoder below, whose answer, and error message, are the reference.
    """
    shapes = body.translate(_NUMBER_SHAPES, b"+")
    if body[:3] != b"\xef\xbb\xbf" and _EXPONENT_MARK not in shapes and _DIGITS_MARK not in shapes:
        try:
            return jiter.from_json(body, allow_inf_nan=False, catch_duplicate_keys=True)
        except ValueError:
            pass  # the strict decoder says why (or accepts what jiter's depth limit refused)
    return _decode_strictly(body)


def _decode_strictly(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise JsonFormatError(
            f"The body is not valid UTF-8 (invalid byte at offset {error.start}); "
            "JSON must be encoded as UTF-8"
        ) from None
    if text.startswith(_UTF8_BOM):
        text = text[1:]
    if not text.strip():
        raise JsonFormatError("The request body is empty; send one CloudEvent as a JSON object")
    try:
        return _DECODER.decode(text)
    except _DuplicateKey as error:
        raise JsonFormatError(
            f"The member name '{error.args[0]}' appears more than once in the same object; "
            "each name may appear only once"
        ) from None
    except RecursionError:
        raise JsonFormatError(
            f"The JSON is nested too deeply; 'data' may be nested at most {MAX_DATA_DEPTH} levels"
        ) from None
    except JsonFormatError:
        raise
    except ValueError as error:  # JSONDecodeError, or an integer with too many digits
        raise JsonFormatError(f"The body is not valid JSON: {error}") from None


def nesting_depth_exceeds(value: Any, limit: int) -> bool:
    """True when objects and arrays in ``value`` nest more than ``limit`` levels deep."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node  # type: ignore[assignment]
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def may_nest_deeper_than(body: bytes, limit: int) -> bool:
    """A cheap upper bound: with at most ``limit`` brackets in the body, no value can nest deeper.

    It counts brackets inside strings too, which only ever makes the answer more cautious; when it
    says True, ``nesting_depth_exceeds`` gives the exact answer.
    """
    return body.count(b"{") + body.count(b"[") > limit


def value_may_nest_deeper_than(value: Any, limit: int) -> bool:
    """The same bound for a decoded value (a batch element's ``data``, whose own bytes are not
    at hand): its compact JSON's brackets, about ten times cheaper than the exact walk."""
    try:
        return may_nest_deeper_than(orjson.dumps(value), limit)
    except TypeError:  # an integer beyond 64 bits, or a lone surrogate: let the walk decide
        return True


def encode_compact(members: Any) -> bytes:
    """Compact JSON in UTF-8 (of an event's members, or of any JSON value such as its data).
    Raises ``JsonFormatError`` for a string JSON cannot carry.

    Such a string survives decoding: an escaped unpaired surrogate (``"\\ud800"``) has no UTF-8
    form. (Numbers beyond a double are refused while decoding.) orjson writes the common case;
    integers beyond 64 bits, which it refuses, go through the standard library's encoder.
    """
    try:
        return orjson.dumps(members)
    except TypeError as error:
        if "surrogates" not in str(error):  # an integer beyond 64 bits
            with contextlib.suppress(UnicodeEncodeError):  # ... and maybe a surrogate too
                return _FALLBACK_ENCODER.encode(members).encode("utf-8")
    raise JsonFormatError(
        "The event contains an unpaired surrogate escape (such as \\ud800), which is not "
        "valid Unicode; encode the text correctly or use data_base64"
    )


#: The integers a double holds exactly: RFC 8785 compares numbers as doubles.
_EXACT_INTEGERS = 2**53 - 1


def canonical_json(value: Any) -> bytes:
    """A decoded JSON value in its RFC 8785 (JCS) canonical form: members sorted by their UTF-16
    code units, numbers as the doubles they name (``1``, ``1.0`` and ``1e0`` are all ``1``),
    strings as ECMAScript writes them. Two values are the same JSON value exactly when their
    canonical forms are the same bytes.

    The ``rfc8785`` package is the reference. orjson's sorted output is byte for byte the same
    (tests/unit/test_canonical_content.py proves it) for every value but those with an integer
    beyond a double's exact range, a member name with characters from U+E000 up (where UTF-16
    order differs from code point order), or a number that orjson and ECMAScript write apart:
    a fraction of a millionth (``5e-6``: ``0.000005`` in ECMAScript) or a whole number written
    as a fraction (``1.0``), which is first made the integer it is. It is about twenty times
    cheaper than the reference, so only the rare value pays for the reference.

    The common value needs no walk at all: orjson's output is searched for anything that could
    be one of those (``_MAYBE_NOT_CANONICAL``; a string that merely looks like one only costs the
    walk)."""
    try:
        written = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer beyond 64 bits
        written = None
    if written is not None and not _may_not_be_canonical(written):
        return written
    shape = _orjson_shape(value)
    if shape is _SAME:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    if shape is _WHOLE_FLOATS:
        return orjson.dumps(_whole_as_integers(value), option=orjson.OPT_SORT_KEYS)
    try:
        return rfc8785.dumps(value)
    except rfc8785.IntegerDomainError:  # an integer beyond 2**53: compared as its double
        return rfc8785.dumps(_as_doubles(value))


#: With every digit mapped to "0", "E" to "e" and every byte from 0xEE up to 0xEE, orjson's
#: output shows in a few substring searches what may differ from RFC 8785 (see below).
_SHAPES = bytes.maketrans(
    b"123456789E" + bytes(range(0xEF, 0x100)), b"000000000e" + b"\xee" * (0x100 - 0xEF)
)
_EXPONENT, _SIXTEEN_DIGITS, _LEAD_BYTE = b"0e", b"0" * 16, b"\xee"


def _may_not_be_canonical(written: bytes) -> bool:
    """Whether orjson's output may hold what RFC 8785 writes otherwise: a whole number written
    as a fraction (``1.0``), any exponent (``1e16``, ``5e-6``), sixteen digits in a row (an
    integer beyond a double's exact range), or a character from U+E000 up (in a member name it
    sorts apart in UTF-16). A string that merely looks like one of them only costs the walk.
    Substring searches and one literal-led pattern: this runs once per event."""
    if _WHOLE_FLOAT.search(written) is not None or written.endswith(b".0"):
        return True
    shapes = written.translate(_SHAPES)
    if _EXPONENT in shapes or _SIXTEEN_DIGITS in shapes:
        return True
    return not written.isascii() and _LEAD_BYTE in shapes


_WHOLE_FLOAT = re.compile(rb"\.0[,\]}]")
_SAME, _WHOLE_FLOATS, _REFERENCE = object(), object(), object()


def _orjson_shape(value: Any) -> object:
    """Whether orjson writes ``value`` as RFC 8785 does: as it is (_SAME), once its whole
    floats are integers (_WHOLE_FLOATS), or not at all (_REFERENCE)."""
    shape = _SAME
    stack = [value]
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is dict:
            for name, member in node.items():
                if not name.isascii() and max(name) >= "\ue000":
                    return _REFERENCE
                stack.append(member)
        elif kind is list:
            stack.extend(node)
        elif kind is float:
            magnitude = abs(node)
            if magnitude.is_integer():
                if magnitude > _EXACT_INTEGERS:
                    return _REFERENCE
                shape = _WHOLE_FLOATS
            elif 1e-6 <= magnitude < 1e-5:
                return _REFERENCE
        elif kind is int and not -_EXACT_INTEGERS <= node <= _EXACT_INTEGERS:
            return _REFERENCE
    return shape


def _whole_as_integers(value: Any) -> Any:
    if isinstance(value, dict):
        return {name: _whole_as_integers(member) for name, member in value.items()}
    if isinstance(value, list):
        return [_whole_as_integers(member) for member in value]
    if type(value) is float and value.is_integer():
        return int(value)
    return value


def _as_doubles(value: Any) -> Any:
    if isinstance(value, dict):
        return {name: _as_doubles(member) for name, member in value.items()}
    if isinstance(value, list):
        return [_as_doubles(member) for member in value]
    if type(value) is int and not -_EXACT_INTEGERS <= value <= _EXACT_INTEGERS:
        try:
            return float(value)
        except OverflowError:  # beyond any double: its digits, marked so no string is like it
            return f"\u0000integer:{value}"
    return value


def json_kind(value: Any) -> str:
    """A decoded JSON value's kind: object, array, string, number, true, false or null."""
    if value is None:
        return "null"
    if value is True or value is False:
        return str(value).lower()
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "string" if isinstance(value, str) else "number"


def event_object(body: bytes) -> dict[str, Any]:
    """The body decoded as one JSON object; ``InvalidEvent`` when it is not JSON or not an
    object (with ``kind`` saying what it is instead)."""
    try:
        value = decode_json(body)
    except JsonFormatError as error:
        raise InvalidEvent(body=(str(error),)) from None
    if not isinstance(value, dict):
        kind = json_kind(value)
        raise InvalidEvent(
            body=(f"The body is a JSON {kind}, not an object; send one event as a JSON object.",),
            kind=kind,
        )
    return value


def validate_object(
    value: dict[str, Any], profile: ExtensionProfile, *, may_nest: bool = True
) -> CloudEvent:
    """Validate one decoded JSON object as an event, ``data``'s nesting depth included
    (``may_nest=False``: the body is known to be too shallow for that check to matter)."""
    format_errors: dict[str, tuple[str, ...]] = {}
    if DATA in value and may_nest and nesting_depth_exceeds(value[DATA], MAX_DATA_DEPTH):
        format_errors[DATA] = (
            f"'data' is nested more than {MAX_DATA_DEPTH} levels deep; flatten it or send it "
            "as data_base64.",
        )
    try:
        event = event_from_members(value, profile)
    except InvalidEvent as invalid:
        raise invalid.merged(format_errors) from None
    if format_errors:
        raise InvalidEvent(format_errors)
    return event


def parse_structured(body: bytes, profile: ExtensionProfile) -> CloudEvent:
    """Decode and validate one structured-mode event; raise ``InvalidEvent`` with every problem."""
    return validate_object(
        event_object(body), profile, may_nest=may_nest_deeper_than(body, MAX_DATA_DEPTH)
    )


def parse_batch(body: bytes) -> list[Any]:
    """A JSON batch's elements, decoded but not validated (each is validated on its own with
    ``batch_element``); ``InvalidEvent`` when the body is not a JSON array."""
    try:
        value = decode_json(body)
    except JsonFormatError as error:
        raise InvalidEvent(body=(str(error),)) from None
    if not isinstance(value, list):
        raise InvalidEvent(
            body=(
                f"A batch must be a JSON array of events; this body is a JSON "
                f"{json_kind(value)}. Send one event as application/cloudevents+json instead.",
            )
        )
    return value


#: A batch longer than this is counted from its first this many bytes before it is decoded.
BATCH_PREFIX_BYTES = 64 * 1024


def batch_length_at_least(body: bytes) -> int:
    """A lower bound on how many elements a JSON array has, from decoding only its first
    ``BATCH_PREFIX_BYTES`` (jiter's partial mode): so that an over-long batch is refused without
    building every element. 0 when the body is short (it is decoded whole anyway) or does not
    start as an array (the decoder then says what it is)."""
    if len(body) <= BATCH_PREFIX_BYTES:
        return 0
    try:
        prefix = jiter.from_json(body[:BATCH_PREFIX_BYTES], partial_mode=True)
    except ValueError:
        return 0
    return len(prefix) if isinstance(prefix, list) else 0


def batch_element(element: Any, profile: ExtensionProfile, *, may_nest: bool) -> CloudEvent:
    """One element of a batch, validated as a structured event. ``may_nest`` is the whole batch
    body's bound (``may_nest_deeper_than``); when it holds, the element's own ``data`` is bounded
    before it is walked."""
    if not isinstance(element, dict):
        kind = json_kind(element)
        raise InvalidEvent(
            body=(f"The element is a JSON {kind}, not an object; each element is one event.",),
            kind=kind,
        )
    if may_nest and DATA in element:
        may_nest = value_may_nest_deeper_than(element[DATA], MAX_DATA_DEPTH)
    return validate_object(element, profile, may_nest=may_nest)


#: The queue message's member order: the core attributes in the spec's order, then extensions
#: by name, then the data. One order for every content mode, so that the same event sent in
#: structured and in binary mode becomes the same bytes.
CANONICAL_ORDER = (
    "specversion", "id", "source", "type", "datacontenttype", "dataschema", "subject", "time"
)  # fmt: skip
_LAST = (DATA, DATA_BASE64)


def canonical(members: Mapping[str, Any]) -> dict[str, Any]:
    ordered = {name: members[name] for name in CANONICAL_ORDER if name in members}
    for name in sorted(members):
        if name not in ordered and name not in _LAST:
            ordered[name] = members[name]
    for name in _LAST:
        if name in members:
            ordered[name] = members[name]
    return ordered


def serialize(event: CloudEvent, extra: Mapping[str, Any] | None = None) -> bytes:
    """The event as compact structured-mode JSON (UTF-8) in ``CANONICAL_ORDER``: the queue
    message's content; with ``extra``, attributes the endpoint adds (trace context), a None
    value removing one."""
    members = event.members
    if extra is not None:
        members = {**members, **extra}
        if None in extra.values():
            members = {name: value for name, value in members.items() if value is not None}
    try:
        return encode_compact(canonical(members))
    except JsonFormatError as error:
        raise InvalidEvent({DATA: (str(error),)}) from None
