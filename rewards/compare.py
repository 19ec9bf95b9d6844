"""Exact comparison of what a program produced with what a test expects: pure, linear time, bounded.

A policy learns whatever a comparator lets through, so every rule here says no unless the values really agree.

Printed output (stdin tests), ``COMPARATORS``; the number-tolerant ones compare token by token:

- a token equal as text is equal;
- an expected integer literal (``[+-]?digits``) is matched only by an integer literal of the same value
  (``007``, ``+7`` and ``7`` are one value, so are ``-0`` and ``0``); integers of any size are compared as digit
  strings, never converted; ``1e9`` or ``1000000007.0`` never match ``1000000007``;
- an expected float literal (``1.5``, ``.5``, ``5.``, ``1e-7``, with '.' or an exponent) is matched by an
  integer or float literal within ``tolerance``, absolute or relative;
- a non-finite value (``inf``, ``nan``, or a literal that overflows such as ``9e999``) equals only the same
  text, never a finite value;
- numbers are ASCII only (no ``1_000``, no ``0x10``, no other scripts' digits), and a non-integer token over
  ``MAX_NUMBER_CHARS`` is text; classifying a token is one regex match that cannot backtrack: linear time.

Call results (call tests), ``decode_value`` then ``json_equal``: the program's process writes a value as tagged
JSON (documented at ``decode_value``); the host decodes it strictly, within size and depth limits, and compares
it with the dataset's JSON value: ``bool`` is not an ``int``, an expected ``int`` needs an ``int`` of the same
value, an expected ``float`` an ``int`` or ``float`` within ``tolerance``, non-finite never equals finite, a list
is matched by a list or tuple, a dict by a dict whose keys are those strings (an ``int`` key ``k`` stands for
``str(k)``), and sets, bytes, complex numbers and handles match nothing JSON can express.

Exceptions::

    ValueError
    └── MalformedValue  a call result is not well-formed tagged JSON within the limits (the program's failure)
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from itertools import accumulate, repeat
from typing import Any

__all__ = [
    "COMPARATORS",
    "MAX_NUMBER_CHARS",
    "Comparator",
    "Handle",
    "LongInt",
    "MalformedValue",
    "compare_exact",
    "compare_lines",
    "compare_lines_float",
    "compare_tokens_float",
    "decode_value",
    "describe_value",
    "encode_value",
    "json_equal",
    "tokens_equal",
]

Comparator = Callable[[str, str, float], str | None]

MAX_NUMBER_CHARS = 4096
_SHOWN_TOKEN_CHARS = 80
_INT_DIGITS = 4300  # Python's default int() limit: longer integers become LongInt
# Possessive quantifiers never give back what they took, so a match is one left-to-right pass (at most two: one
# per alternative) and takes linear time on any text; group 1 holds an integer's digits.
_NUMBER = re.compile(r"[+-]?+(?:([0-9]++)|(?:[0-9]++(?:\.[0-9]*+)?+|\.[0-9]++)(?:[eE][+-]?+[0-9]++)?+)")
_ESCAPE = re.compile(r"\\.", re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_NON_FINITE = ("inf", "-inf", "nan")
_DONE = object()


class MalformedValue(ValueError):
    """A call result that is not well-formed tagged JSON within the limits; the message says what is wrong."""


@dataclass(frozen=True)
class LongInt:
    """An integer with more digits than ``int()`` accepts: its decimal text, compared exactly as text."""

    digits: str


@dataclass(frozen=True, eq=False)
class Handle:
    """An opaque reference to a non-plain object in the program's process: equal to no expected value."""

    type_name: str
    id: int = 0


# -------------------------------------------------------------------------------------------- number tokens


def _integer_text(token: str) -> str | None:
    """``token`` as a normalised integer (no '+', no leading zeros, ``0`` for ``-0``); None for other text."""
    number = _NUMBER.fullmatch(token)
    if number is None or number[1] is None:
        return None
    digits = number[1].lstrip("0") or "0"
    return "-" + digits if token[0] == "-" and digits != "0" else digits


def _float_value(token: str, number: re.Match[str] | None) -> float | None:
    """A number token's value as a float (inf when it overflows); None for text or a token over the cap."""
    return None if number is None or len(token) > MAX_NUMBER_CHARS else float(token)


def tokens_equal(got: str, want: str, tolerance: float) -> bool:
    """One printed token against the expected one, by the rules in the module docstring."""
    if got == want:
        return True
    want_number = _NUMBER.fullmatch(want)
    if want_number is not None and want_number[1] is not None:
        return _integer_text(got) == _integer_text(want)
    want_value = _float_value(want, want_number)
    got_value = _float_value(got, _NUMBER.fullmatch(got))
    if want_value is None or got_value is None or not (math.isfinite(want_value) and math.isfinite(got_value)):
        return False
    return math.isclose(got_value, want_value, rel_tol=tolerance, abs_tol=tolerance)


# ---------------------------------------------------------------------------------------------- comparators


def _trim(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more]"


def _lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _token_lists_equal(got: list[str], want: list[str], tolerance: float) -> bool:
    return len(got) == len(want) and all(map(tokens_equal, got, want, repeat(tolerance)))


def _first_difference(got: list[str], want: list[str], same: Callable[[str, str], bool], unit: str) -> str | None:
    for index, (g, w) in enumerate(zip(got, want, strict=False)):  # the lengths are compared below
        if not same(g, w):
            shown_w, shown_g = _trim(w, _SHOWN_TOKEN_CHARS), _trim(g, _SHOWN_TOKEN_CHARS)
            return f"{unit} {index + 1}: expected {shown_w!r}, got {shown_g!r}"
    if len(got) != len(want):
        return f"expected {len(want)} {unit}s, got {len(got)}"
    return None


def compare_lines_float(output: str, expected: str, tolerance: float) -> str | None:
    """Line by line (trailing whitespace and trailing empty lines ignored), each line token by token."""

    def same(g: str, w: str) -> bool:
        return g == w or _token_lists_equal(g.split(), w.split(), tolerance)

    return _first_difference(_lines(output), _lines(expected), same, "line")


def compare_lines(output: str, expected: str, tolerance: float) -> str | None:
    """Line by line as text (trailing whitespace and trailing empty lines ignored); no number tolerance."""
    return _first_difference(_lines(output), _lines(expected), str.__eq__, "line")


def compare_tokens_float(output: str, expected: str, tolerance: float) -> str | None:
    """Whitespace-separated tokens, whatever the layout, each by ``tokens_equal``."""
    return _first_difference(output.split(), expected.split(), lambda g, w: tokens_equal(g, w, tolerance), "token")


def compare_exact(output: str, expected: str, tolerance: float) -> str | None:
    return None if output == expected else "output differs from the expected text byte for byte"


COMPARATORS: dict[str, Comparator] = {
    "lines_float": compare_lines_float,
    "lines": compare_lines,
    "tokens_float": compare_tokens_float,
    "exact": compare_exact,
}


# ----------------------------------------------------------------------------------------------- json_equal


def _decimal_text(value: int | LongInt) -> str:
    if isinstance(value, LongInt):
        return value.digits
    try:
        return str(value)
    except ValueError:  # past str()'s digit limit; Decimal converts an int without one
        return format(Decimal(value), "f")


def _integers_equal(got: Any, want: int | LongInt) -> bool:
    if type(got) is int and type(want) is int:
        return got == want
    return type(got) in (int, LongInt) and _decimal_text(got) == _decimal_text(want)


def _as_float(value: Any) -> float | None:
    """An int or float as a float (inf when too large); None for anything else (bool, LongInt as text)."""
    if type(value) is LongInt:
        return float(value.digits)
    if type(value) not in (int, float):
        return None
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _floats_equal(got: Any, want: float, tolerance: float) -> bool:
    got_value = _as_float(got)
    if got_value is None:
        return False
    if not (math.isfinite(got_value) and math.isfinite(want)):
        return type(got) is float and got == want  # inf == inf; nan equals nothing
    return math.isclose(got_value, want, rel_tol=tolerance, abs_tol=tolerance)


_SCALAR_EQUAL: dict[type, Callable[[Any, Any, float], bool]] = {
    bool: lambda got, want, tolerance: type(got) is bool and got == want,
    int: lambda got, want, tolerance: _integers_equal(got, want),
    LongInt: lambda got, want, tolerance: _integers_equal(got, want),
    float: _floats_equal,
    str: lambda got, want, tolerance: type(got) is str and got == want,
    type(None): lambda got, want, tolerance: got is None,
}


def _json_key(key: Any) -> str | None:
    """The JSON object key a decoded dict key stands for: a str itself, an int its decimal text."""
    if type(key) is str:
        return key
    return _decimal_text(key) if type(key) in (int, LongInt) else None


def _dict_children(got: Any, want: dict[str, Any]) -> list[tuple[Any, Any]] | None:
    if type(got) is not dict or len(got) != len(want):
        return None
    by_name: dict[str, Any] = {}
    for key, value in got.items():
        name = _json_key(key)
        if name is None or name in by_name:
            return None
        by_name[name] = value
    if by_name.keys() != want.keys():
        return None
    return [(by_name[name], want[name]) for name in want]


def _equal_children(got: Any, want: Any, tolerance: float) -> list[tuple[Any, Any]] | None:
    """The pairs still to compare when ``got`` matches ``want`` at the top level; None when it does not."""
    if type(want) is list:
        if type(got) not in (list, tuple) or len(got) != len(want):
            return None
        return list(zip(got, want, strict=True))
    if type(want) is dict:
        return _dict_children(got, want)
    same = _SCALAR_EQUAL.get(type(want))
    return [] if same is not None and same(got, want, tolerance) else None


def json_equal(got: Any, want: Any, tolerance: float) -> bool:
    """A decoded call result against the dataset's JSON value, by the rules in the module docstring.

    Iterative, so a value of any depth is compared without recursion.
    """
    pending = [(got, want)]
    while pending:
        children = _equal_children(*pending.pop(), tolerance)
        if children is None:
            return False
        pending.extend(children)
    return True


# ----------------------------------------------------------------------------------------------- decoding


def _array(payload: Any, tag: str) -> list[Any]:
    if type(payload) is not list:
        raise MalformedValue(f"tag {tag!r} needs a JSON array")
    return payload


def _pair(payload: Any, tag: str) -> tuple[Any, Any]:
    items = _array(payload, tag)
    if len(items) != 2:
        raise MalformedValue(f"tag {tag!r} needs 2 items, got {len(items)}")
    return items[0], items[1]


def _decode_set(payload: Any, tag: str) -> set[Any]:
    items = _array(payload, tag)
    try:
        members = set(items)
    except TypeError as exc:
        raise MalformedValue(f"tag {tag!r} holds an unhashable item") from exc
    if len(members) != len(items):
        raise MalformedValue(f"tag {tag!r} holds an item twice")
    return members


def _decode_dict(payload: Any) -> dict[Any, Any]:
    entries = _array(payload, "d")
    pairs = [_pair(entry, "d") for entry in entries]
    try:
        result = dict(pairs)
    except TypeError as exc:
        raise MalformedValue("tag 'd' has an unhashable key") from exc
    if len(result) != len(pairs):
        raise MalformedValue("tag 'd' has a key twice")
    return result


def _decode_bytes(payload: Any) -> bytes:
    if type(payload) is not str:
        raise MalformedValue("tag 'b' needs a base64 string")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedValue(f"tag 'b' is not valid base64: {exc}") from exc


def _decode_non_finite(payload: Any) -> float:
    if payload not in _NON_FINITE:
        raise MalformedValue("tag 'f' needs one of 'inf', '-inf', 'nan'")
    return float(payload)


def _complex_part(part: Any) -> float:
    if type(part) not in (int, float):
        raise MalformedValue("tag 'c' needs two numbers")
    try:
        return float(part)
    except OverflowError as exc:
        raise MalformedValue("tag 'c' has a part too large for a float") from exc


def _decode_complex(payload: Any) -> complex:
    real, imaginary = _pair(payload, "c")
    return complex(_complex_part(real), _complex_part(imaginary))


def _decode_handle(payload: Any) -> Handle:
    handle_id, type_name = _pair(payload, "h")
    if type(handle_id) is not int or type(type_name) is not str:
        raise MalformedValue("tag 'h' needs [id, type name]")
    return Handle(type_name, handle_id)


_TAGS: dict[str, Callable[[Any], Any]] = {
    "t": lambda payload: tuple(_array(payload, "t")),
    "s": lambda payload: _decode_set(payload, "s"),
    "fs": lambda payload: frozenset(_decode_set(payload, "fs")),
    "d": _decode_dict,
    "b": _decode_bytes,
    "f": _decode_non_finite,
    "c": _decode_complex,
    "h": _decode_handle,
}


def _decode_tagged(pairs: list[tuple[str, Any]]) -> Any:
    if len(pairs) != 1:
        raise MalformedValue(f"a JSON object must be one tag, got {len(pairs)} keys")
    tag, payload = pairs[0]
    decode = _TAGS.get(tag)
    if decode is None:
        raise MalformedValue(f"unknown tag {_trim(tag, 20)!r}")
    return decode(payload)


def _decode_int(literal: str) -> int | LongInt:
    if len(literal) <= _INT_DIGITS:
        try:
            return int(literal)
        except ValueError:  # this interpreter's int() limit is lower than the default
            pass
    return LongInt(literal)


def _decode_float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_CHARS:
        raise MalformedValue(f"a number literal of {len(literal)} characters, over {MAX_NUMBER_CHARS}")
    value = float(literal)
    if not math.isfinite(value):
        raise MalformedValue(f"{_trim(literal, 20)} overflows a float (non-finite floats are tagged 'f')")
    return value


def _reject_constant(name: str) -> Any:
    raise MalformedValue(f"{name} is not JSON (non-finite floats are tagged 'f')")


def _nesting_depth(text: str) -> int:
    """How deep ``text``'s brackets nest outside strings, in linear time and without parsing.

    Up to the first point where ``text`` stops being valid JSON, this is the nesting ``json.loads`` sees; it
    stops there, so it never recurses deeper than this.
    """
    outside_strings = "".join(_ESCAPE.sub("", text).split('"')[0::2])
    brackets = _NOT_BRACKET.sub("", outside_strings)
    return max(accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0)


def _check_size(text: str, max_bytes: int) -> None:
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise MalformedValue(f"the value is over {max_bytes} bytes")


def decode_value(text: str, *, max_bytes: int, max_depth: int) -> Any:
    """A call result from its tagged JSON, strictly; raises ``MalformedValue`` on anything off.

    JSON null, true, false, strings and arrays are themselves (arrays are lists); an integer literal is an
    ``int`` (a ``LongInt`` past 4300 digits); any other number is a finite ``float``. Every other value is a
    JSON object with exactly one key, its tag: ``{"t": [..]}`` tuple, ``{"s": [..]}`` set, ``{"fs": [..]}``
    frozenset, ``{"d": [[k, v], ..]}`` dict (keys are tagged values too), ``{"b": "<base64>"}`` bytes,
    ``{"f": "inf" | "-inf" | "nan"}`` non-finite float, ``{"c": [re, im]}`` complex, ``{"h": [id, "type"]}``
    ``Handle``. ``max_bytes`` bounds the UTF-8 size; ``max_depth`` bounds how deep JSON arrays and objects
    nest (a tagged container is two levels, a dict three); keep it well under ``sys.getrecursionlimit()``,
    which bounds ``json.loads``. Linear time in ``len(text)``.
    """
    _check_size(text, max_bytes)
    depth = _nesting_depth(text)
    if depth > max_depth:
        raise MalformedValue(f"the value nests {depth} deep, over {max_depth}")
    try:
        return json.loads(
            text,
            object_pairs_hook=_decode_tagged,
            parse_int=_decode_int,
            parse_float=_decode_float,
            parse_constant=_reject_constant,
        )
    except json.JSONDecodeError as exc:
        raise MalformedValue(f"not JSON: {exc}") from exc


# ----------------------------------------------------------------------------------------------- encoding


def _tagged_float(value: float) -> Any:
    return value if math.isfinite(value) else {"f": str(value)}


_ENCODERS: dict[type, Callable[[Any], Any]] = {
    type(None): lambda value: value,
    bool: lambda value: value,
    int: lambda value: value,
    str: lambda value: value,
    float: _tagged_float,
    list: lambda value: [_tagged(item) for item in value],
    tuple: lambda value: {"t": [_tagged(item) for item in value]},
    set: lambda value: {"s": [_tagged(item) for item in value]},
    frozenset: lambda value: {"fs": [_tagged(item) for item in value]},
    dict: lambda value: {"d": [[_tagged(key), _tagged(item)] for key, item in value.items()]},
    bytes: lambda value: {"b": base64.b64encode(value).decode("ascii")},
    complex: lambda value: {"c": [_tagged_float(value.real), _tagged_float(value.imag)]},
    Handle: lambda value: {"h": [value.id, value.type_name]},
}


def _tagged(value: Any) -> Any:
    encode = _ENCODERS.get(type(value))
    if encode is None:
        raise TypeError(f"not a plain value: {type(value).__name__}")
    return encode(value)


def encode_value(value: Any) -> str:
    """The tagged JSON of a plain value: the inverse of ``decode_value``, for tests and host-side tools.

    Exact types only (a subclass is a ``TypeError``). Recursive, and ``int`` is limited to 4300 digits (no
    ``LongInt``): it encodes our own values, never a program's.
    """
    return json.dumps(_tagged(value), separators=(",", ":"), allow_nan=False)


# ------------------------------------------------------------------------------------------- describe_value


class _Text(str):
    """Literal text in a rendering (brackets, separators), told apart from a str value by its type."""


def _int_text(value: int) -> str:
    try:
        return str(value)
    except ValueError:
        return f"<int of {value.bit_length()} bits>"


def _separated(items: Iterator[Any], closing: str, separator: str = ", ") -> Iterator[Any]:
    for index, item in enumerate(items):
        if index:
            yield _Text(separator)
        yield item
    yield _Text(closing)


def _dict_pieces(value: dict[Any, Any]) -> Iterator[Any]:
    for index, (key, item) in enumerate(value.items()):
        if index:
            yield _Text(", ")
        yield from (key, _Text(": "), item)
    yield _Text("}")


def _tuple_pieces(value: tuple[Any, ...]) -> Iterator[Any]:
    return _separated(iter(value), ",)" if len(value) == 1 else ")")


_SCALARS: dict[type, Callable[[Any, int], str]] = {
    str: lambda value, limit: repr(value[: limit + 1]),
    bytes: lambda value, limit: repr(value[: limit + 1]),
    int: lambda value, limit: _int_text(value),
    LongInt: lambda value, limit: value.digits[: limit + 1],
    Handle: lambda value, limit: f"<{value.type_name[:limit]} object>",
    bool: lambda value, limit: repr(value),
    float: lambda value, limit: repr(value),
    complex: lambda value, limit: repr(value),
    type(None): lambda value, limit: "None",
}


def _scalar_text(value: Any, limit: int) -> str:
    """A scalar's text, cut so that it stays cheap (a long piece is cut again at the end); a type's name else."""
    render = _SCALARS.get(type(value))
    return render(value, limit) if render is not None else f"<{type(value).__name__}>"


_CONTAINERS: dict[type, Callable[[Any], tuple[str, Iterator[Any]]]] = {
    list: lambda value: ("[", _separated(iter(value), "]")),
    tuple: lambda value: ("(", _tuple_pieces(value)),
    set: lambda value: ("{", _separated(iter(value), "}")) if value else ("set()", iter(())),
    frozenset: lambda value: ("frozenset({", _separated(iter(value), "})")) if value else ("frozenset()", iter(())),
    dict: lambda value: ("{", _dict_pieces(value)),
}


def describe_value(value: Any, limit: int = 300) -> str:
    """A Python-like rendering of a decoded or expected value in at most ``limit`` characters.

    Built piece by piece from a stack of iterators and stopped once it is long enough, so a deep or huge
    value costs about ``limit`` steps; an object of any other type shows only its type's name.
    """
    pieces: list[str] = []
    size = 0
    pending: list[Iterator[Any]] = [iter((value,))]
    while pending and size <= limit:
        item = next(pending[-1], _DONE)
        if item is _DONE:
            pending.pop()
            continue
        if type(item) is _Text:
            piece = str(item)
        elif type(item) in _CONTAINERS:
            piece, rest = _CONTAINERS[type(item)](item)
            pending.append(rest)
        else:
            piece = _scalar_text(item, limit)
        pieces.append(piece)
        size += len(piece)
    text = "".join(pieces)
    return text if size <= limit else text[: max(limit - 3, 0)] + "..."
