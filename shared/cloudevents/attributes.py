"""The CloudEvents 1.0.2 type system: one checker per attribute type.

Each checker takes a decoded JSON value and returns ``None`` when it is valid, or a message that
says what is wrong in terms a publisher can act on. All patterns are linear-time (no nested
quantifiers over overlapping classes), because every value here is attacker-controlled.
"""

from __future__ import annotations

import binascii
import calendar
import functools
import ipaddress
import json
import re
from collections.abc import Callable

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1

ATTRIBUTE_NAME = re.compile(r"[a-z0-9]+")

# A String may not hold control characters, unpaired surrogates or Unicode noncharacters (the
# type system's String). Noncharacters are U+FDD0..U+FDEF and the last two code points of every
# plane.
_NONCHARACTERS = "".join(
    f"\\U{plane * 0x10000 + 0xFFFE:08x}\\U{plane * 0x10000 + 0xFFFF:08x}" for plane in range(0x11)
)
FORBIDDEN_STRING_CHARACTERS = re.compile(
    "[\\x00-\\x1f\\x7f-\\x9f\\ud800-\\udfff\\ufdd0-\\ufdef" + _NONCHARACTERS + "]"
)

# RFC 3986, Appendix B: splits any string into its five components, in linear time.
_URI_PARTS = re.compile(r"(?:([^:/?#]+):)?(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?", re.S)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_PCT = r"%[0-9A-Fa-f]{2}"
_PATH = re.compile(rf"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|{_PCT})*")
_QUERY_OR_FRAGMENT = re.compile(rf"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|{_PCT})*")
_USERINFO = re.compile(rf"(?:[A-Za-z0-9\-._~!$&'()*+,;=:]|{_PCT})*")
_REG_NAME = re.compile(rf"(?:[A-Za-z0-9\-._~!$&'()*+,;=]|{_PCT})*")
_IP_FUTURE = re.compile(r"[vV][0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+")
_PORT = re.compile(r"[0-9]*")

# RFC 3339 section 5.6, with lower-case 't' and 'z' (section 5.6 NOTE). [0-9], not \d: \d
# also matches other scripts' digits.
_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)
# The instants (UTC) at which a leap second was inserted, as (year, month, day), from IERS
# Bulletin C. No leap second has been scheduled since 2016 and none may be before 2035.
LEAP_SECOND_DAYS = frozenset(
    {
        (1972, 6, 30), (1972, 12, 31), (1973, 12, 31), (1974, 12, 31), (1975, 12, 31),
        (1976, 12, 31), (1977, 12, 31), (1978, 12, 31), (1979, 12, 31), (1981, 6, 30),
        (1982, 6, 30), (1983, 6, 30), (1985, 6, 30), (1987, 12, 31), (1989, 12, 31),
        (1990, 12, 31), (1992, 6, 30), (1993, 6, 30), (1994, 6, 30), (1995, 12, 31),
        (1997, 6, 30), (1998, 12, 31), (2005, 12, 31), (2008, 12, 31), (2012, 6, 30),
        (2015, 6, 30), (2016, 12, 31),
    }
)  # fmt: skip

# RFC 2045/9110 media type: type "/" subtype *( OWS ";" OWS token "=" ( token / quoted-string ) )
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"  # noqa: S105 - an RFC 9110 token, not a secret
#: RFC 9110 quoted-string, ASCII only: qdtext and quoted-pair without obs-text (bytes from 0x80
#: up), so that every media type accepted here is a valid header value (binary mode's
#: Content-Type, and a claim-checked blob's Content-Type header) as it stands.
_QUOTED_STRING = r'"(?:[\t\x20\x21\x23-\x5b\x5d-\x7e]|\\[\t\x20-\x7e])*"'
MEDIA_TYPE = re.compile(
    rf"({_TOKEN})/({_TOKEN})((?:[ \t]*;[ \t]*{_TOKEN}=(?:{_TOKEN}|{_QUOTED_STRING}))*)[ \t]*"
)

Checker = Callable[[object], "str | None"]

#: Verdicts remembered per checker (see ``remembered``); values longer than this are not kept.
REMEMBERED_VALUES = 1024
REMEMBERED_MAX_CHARACTERS = 256


def remembered(checker: Checker) -> Checker:
    """``checker``, remembering its verdict on the last ``REMEMBERED_VALUES`` short strings.

    A publisher sends the same ``source``, ``resource`` and ``datacontenttype`` with every
    event, and the checks of those (URI and URN grammars, media types) are the costly ones: a
    remembered verdict is a dictionary lookup. Checkers are pure, so a verdict never goes stale.
    """
    cached = functools.lru_cache(maxsize=REMEMBERED_VALUES)(checker)

    @functools.wraps(checker)
    def check(value: object) -> str | None:
        if type(value) is str and len(value) <= REMEMBERED_MAX_CHARACTERS:
            return cached(value)
        return checker(value)

    return check


def type_name(value: object) -> str:
    """The JSON name of a decoded value's type, with its article, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number with a fraction or exponent"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def has_forbidden_characters(text: str) -> bool:
    # Every forbidden character is unprintable (Cc, Cs or Cn), and isprintable() is ~20 times
    # faster than the search, so the search runs only for text with something unprintable in it.
    return not text.isprintable() and FORBIDDEN_STRING_CHARACTERS.search(text) is not None


def check_string_characters(text: str) -> str | None:
    if text.isprintable():
        return None
    bad = FORBIDDEN_STRING_CHARACTERS.search(text)
    if bad is None:
        return None
    return (
        f"contains the character U+{ord(bad.group()):04X} at position {bad.start()}; "
        "control characters, unpaired surrogates and Unicode noncharacters are not allowed"
    )


def check_string(value: object) -> str | None:
    """A CloudEvents String (may be empty). Its characters are checked by the event, for all
    string attributes at once (``check_string_characters``)."""
    if not isinstance(value, str):
        return f"must be a string, not {type_name(value)}"
    return None


def check_nonempty_string(value: object) -> str | None:
    if isinstance(value, str) and not value:
        return "must be a non-empty string"
    return check_string(value)


def check_integer(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"must be an integer, not {type_name(value)}"
    if not INT32_MIN <= value <= INT32_MAX:
        return f"must be between {INT32_MIN} and {INT32_MAX}"
    return None


def check_extension_value(value: object) -> str | None:
    """Any CloudEvents type: in JSON a string, a boolean, or an Integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return check_integer(value)
    if isinstance(value, str):
        return None
    return f"must be a string, an integer or a boolean, not {type_name(value)}"


def _authority_problem(authority: str) -> str | None:
    userinfo, at, hostport = authority.rpartition("@")
    if at and not _USERINFO.fullmatch(userinfo):
        return "has invalid characters in its user information"
    if hostport.startswith("["):
        literal, bracket, port = hostport[1:].partition("]")
        if not bracket:
            return "has an IP literal without its closing ']'"
        if literal[:1] in ("v", "V"):
            if not _IP_FUTURE.fullmatch(literal):
                return "has an invalid IP literal"
        else:
            try:
                ipaddress.IPv6Address(literal)
            except ValueError:
                return "has an invalid IPv6 literal"
        if port and not (port.startswith(":") and _PORT.fullmatch(port[1:])):
            return "has an invalid port"
        return None
    host, colon, port = hostport.partition(":")
    if not _REG_NAME.fullmatch(host):
        return "has invalid characters in its host"
    if colon and not _PORT.fullmatch(port):
        return "has an invalid port"
    return None


def _uri_problem(text: str, *, absolute: bool) -> str | None:
    parts = _URI_PARTS.fullmatch(text)
    if parts is None:  # cannot happen: the pattern matches every string
        return "is not a URI reference"
    scheme, authority, path, query, fragment = parts.groups()
    if scheme is not None and not _SCHEME.fullmatch(scheme):
        if absolute:
            return f"must be an absolute URI, but '{scheme}' is not a valid scheme"
        return (
            "is not a valid URI reference: a relative reference cannot have ':' in its first "
            "path segment (write './" + text + "' or use a scheme)"
        )
    if absolute and scheme is None:
        return "must be an absolute URI with a scheme, such as https://example.com/schema"
    if authority is not None:
        problem = _authority_problem(authority)
        if problem:
            return problem
    if not _PATH.fullmatch(path):
        return "has characters that are not allowed in a URI path (encode them as %XX)"
    if query is not None and not _QUERY_OR_FRAGMENT.fullmatch(query):
        return "has characters that are not allowed in a URI query (encode them as %XX)"
    if fragment is not None and not _QUERY_OR_FRAGMENT.fullmatch(fragment):
        return "has characters that are not allowed in a URI fragment (encode them as %XX)"
    return None


@remembered
def check_uri_reference(value: object) -> str | None:
    """RFC 3986 URI-reference: absolute, or relative such as '/orders' or '1-555-123-4567'."""
    problem = check_nonempty_string(value)
    if problem:
        return problem
    assert isinstance(value, str)
    return _uri_problem(value, absolute=False)


@remembered
def check_absolute_uri(value: object) -> str | None:
    problem = check_nonempty_string(value)
    if problem:
        return problem
    assert isinstance(value, str)
    return _uri_problem(value, absolute=True)


def check_timestamp(value: object) -> str | None:
    """RFC 3339 date-time: seconds and an offset are required."""
    if not isinstance(value, str):
        return f"must be an RFC 3339 timestamp string, not {type_name(value)}"
    match = _TIMESTAMP.fullmatch(value)
    if match is None:
        return (
            "must be an RFC 3339 timestamp with seconds and an offset, "
            "such as 2024-05-17T13:45:00Z or 2024-05-17T15:45:00.123+02:00"
        )
    year, month, day, hour, minute, second = map(int, match.group(1, 2, 3, 4, 5, 6))
    sign, offset_hour, offset_minute = match.group(8, 9, 10)
    if not 1 <= month <= 12 or day < 1 or (day > 28 and day > calendar.monthrange(year, month)[1]):
        return f"is not a real date ({match.group(1)}-{match.group(2)}-{match.group(3)})"
    if hour > 23 or minute > 59 or second > 60:
        return "has an hour, minute or second out of range"
    if sign is not None and (int(offset_hour) > 23 or int(offset_minute) > 59):
        return "has an offset out of range"
    if second == 60 and not _is_leap_second(value, match):
        return "has second 60, which is only valid at a leap second (23:59:60 UTC)"
    return None


def _is_leap_second(value: str, match: re.Match[str]) -> bool:
    """Second 60 is valid only at 23:59:60 UTC on a day a leap second was inserted."""
    import datetime

    sign, offset_hour, offset_minute = match.group(8, 9, 10)
    year, month, day, hour, minute = (int(part) for part in match.group(1, 2, 3, 4, 5))
    local = datetime.datetime(year, month, day, hour, minute)
    offset = datetime.timedelta(0)
    if sign is not None:
        offset = datetime.timedelta(hours=int(offset_hour), minutes=int(offset_minute))
        if sign == "-":
            offset = -offset
    utc = local - offset
    return (utc.hour, utc.minute) == (23, 59) and (utc.year, utc.month, utc.day) in (
        LEAP_SECOND_DAYS
    )


@remembered
def check_media_type(value: object) -> str | None:
    problem = check_nonempty_string(value)
    if problem:
        return problem
    assert isinstance(value, str)
    if MEDIA_TYPE.fullmatch(value) is None:
        if not value.isascii():
            return (
                "must be ASCII: a media type and its parameters are ASCII (RFC 9110); "
                "percent-encode other characters in a parameter's value"
            )
        return "must be a media type such as application/json or text/plain; charset=utf-8"
    return None


def is_json_media_type(media_type: str | None) -> bool:
    """JSON per the JSON format: absent, or a subtype of 'json' or '*+json' (parameters aside)."""
    if media_type is None:
        return True
    essence = media_type.split(";", 1)[0].strip().lower()
    return essence.endswith("/json") or essence.endswith("+json")


# -- canonical forms: when two values are the same under the type system ----------------------


_CANONICAL_INSTANT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]*[1-9])?Z"
)


def canonical_timestamp(text: str) -> str:
    """The instant a valid RFC 3339 timestamp names, written one way: UTC, ``T`` and ``Z`` in
    upper case, the fraction of a second without trailing zeros (``...T11:00:00.500+01:00`` is
    ``...T10:00:00.5Z``). A leap second (23:59:60 UTC) stays second 60. Text that is not a
    timestamp is returned as it is."""
    if _CANONICAL_INSTANT.fullmatch(text):
        return text
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        return text
    import datetime

    year, month, day, hour, minute, second = (int(part) for part in match.group(1, 2, 3, 4, 5, 6))
    fraction = (match.group(7) or ".").rstrip("0")
    sign, offset_hour, offset_minute = match.group(8, 9, 10)
    offset = 0 if sign is None else int(offset_hour) * 60 + int(offset_minute)
    try:
        local = datetime.datetime(year, month, day, hour, minute)
        utc = local - datetime.timedelta(minutes=-offset if sign == "-" else offset)
    except (ValueError, OverflowError):  # an instant before year 1 or after 9999 in UTC
        return text
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
        f"{second:02d}{fraction if fraction != '.' else ''}Z"
    )


def _parameter_value(raw: str) -> str:
    """A media type parameter's value with any quoting taken off (``"a\\"b"`` is ``a"b``)."""
    if len(raw) >= 2 and raw[0] == '"' and raw[-1] == '"':
        return re.sub(r"\\(.)", r"\1", raw[1:-1])
    return raw


_PARAMETER = re.compile(rf"[ \t]*;[ \t]*({_TOKEN})=({_TOKEN}|{_QUOTED_STRING})")


@functools.lru_cache(maxsize=256)
def canonical_media_type(text: str) -> str:
    """A valid media type written one way (RFC 9110 8.3.1): type, subtype and parameter names in
    lower case, parameter values unquoted, parameters in name order, ``charset`` compared
    without regard to case and ``charset=utf-8`` the same as no charset (UTF-8 is what every
    content mode of this binding means by default). Text that is not a media type is returned
    as it is."""
    match = MEDIA_TYPE.fullmatch(text)
    if match is None:
        return text
    parameters: list[tuple[str, str]] = []
    for name, raw in _PARAMETER.findall(match.group(3)):
        name = name.lower()
        value = _parameter_value(raw)
        if name == "charset":
            value = value.lower()
            if value == "utf-8":
                continue
        parameters.append((name, value))
    essence = f"{match.group(1)}/{match.group(2)}".lower()
    # a value may hold ';' or '=': written as JSON strings, no two parameter lists look alike
    return essence + "".join(
        f";{name}={json.dumps(value, ensure_ascii=False)}" for name, value in sorted(parameters)
    )


def check_base64(value: object) -> str | None:
    """Strict RFC 4648 Base64: standard alphabet, padding required, nothing else."""
    if not isinstance(value, str):
        return f"must be a Base64 string, not {type_name(value)}"
    try:
        binascii.a2b_base64(value.encode("ascii"), strict_mode=True)
    except (UnicodeEncodeError, binascii.Error):
        return (
            "must be strict Base64 (RFC 4648: A-Z a-z 0-9 + /, padded with '=' to a "
            "multiple of 4, no whitespace)"
        )
    return None
