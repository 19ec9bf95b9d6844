"""JSON for the program server and the judge harness, from the C accelerator alone.

``import json`` pulls in ``re`` (about 10 ms at every start, twice per assert test); ``_json`` does the same work
without it. Shipped beside the server and the harness as ``rlvr_wire.py``.
"""

import _json


class _Context:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name):
        raise ValueError("not JSON: " + name)


_SCAN = _json.make_scanner(_Context)
_WHITESPACE = " \t\n\r"


def _refuse(value):
    raise TypeError("not JSON: " + type(value).__name__)


_ENCODE = _json.make_encoder(None, _refuse, _json.encode_basestring, None, ":", ",", False, False, False)


def loads(text):
    """One JSON value and nothing else; ValueError otherwise (RecursionError when nested too deeply)."""
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8", "surrogatepass")
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _SCAN(text, start)
    except StopIteration:
        raise ValueError("not JSON") from None
    if text[end:].strip(_WHITESPACE):
        raise ValueError("extra data after the JSON value")
    return value


def dumps(value):
    """Compact JSON; ValueError for non-finite floats, TypeError for what JSON cannot hold."""
    return "".join(_ENCODE(value, 0))
