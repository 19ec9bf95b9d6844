"""Exact comparators and tagged call results: each rule, the reward hacks of issue 6, and bounded work on junk.

Work is asserted by counting the lines of rewards/compare.py that run (Python-level work), never by timing; the
1 MB inputs would also hang the suite if any step were quadratic.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

from rewards import compare
from rewards.compare import (
    COMPARATORS,
    MAX_NUMBER_CHARS,
    Handle,
    LongInt,
    MalformedValue,
    decode_value,
    describe_value,
    encode_value,
    json_equal,
    tokens_equal,
)

TOLERANCE = 1e-6
BIG = "1" + "0" * 309  # 10**309: a float would be inf
MEGABYTE = 1 << 20


def _decode(text: str, *, max_bytes: int = 4 * MEGABYTE, max_depth: int = 64) -> Any:
    return decode_value(text, max_bytes=max_bytes, max_depth=max_depth)


def _nested_list(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def _compare_lines_run(call: Callable[[], object]) -> int:
    """How many lines of rewards/compare.py run during ``call``: the Python-level work, whatever C does."""
    count = 0

    def trace(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        if frame.f_code.co_filename != compare.__file__:
            return None
        count += event == "line"
        return trace

    previous = sys.gettrace()
    sys.settrace(trace)
    try:
        call()
    finally:
        sys.settrace(previous)
    return count


def _same(got: Any, want: Any) -> bool:
    """Equal with the same types all the way down (1 == 1.0 == True, but not here)."""
    if type(got) is not type(want):
        return False
    if type(want) in (list, tuple):
        return len(got) == len(want) and all(map(_same, got, want))
    if type(want) is dict:
        keys_same = list(map(type, got)) == list(map(type, want)) and list(got) == list(want)
        return keys_same and all(_same(got[key], want[key]) for key in want)
    if type(want) is float and math.isnan(want):
        return math.isnan(got)
    if type(want) is Handle:
        return (got.type_name, got.id) == (want.type_name, want.id)
    return bool(got == want)


# ---------------------------------------------------------------------------------------- printed tokens

TOKENS = [
    pytest.param("abc", "abc", True, id="same_text"),
    pytest.param("YES", "yes", False, id="no_lowercasing"),
    # an expected integer needs an integer of the same value
    pytest.param("1e9", "1000000007", False, id="hack_exponent_for_integer"),
    pytest.param("1000000007.0", "1000000007", False, id="hack_float_for_integer"),
    pytest.param("1000000007e0", "1000000007", False, id="hack_exponent_zero"),
    pytest.param("3.0", "3", False, id="float_for_small_integer"),
    pytest.param("007", "7", True, id="leading_zeros"),
    pytest.param("+7", "7", True, id="plus_sign"),
    pytest.param("-0", "0", True, id="minus_zero"),
    pytest.param("-000", "+0", True, id="signed_zeros"),
    pytest.param("-7", "7", False, id="sign_matters"),
    pytest.param("100000000000000000001", "100000000000000000000", False, id="big_integers_exact"),
    pytest.param("0" + "1" * 5000, "1" * 5000, True, id="integer_of_5000_digits"),
    pytest.param("1" * 5000 + "2", "1" * 5000 + "3", False, id="integers_differ_in_last_digit"),
    pytest.param("1_000", "1000", False, id="no_underscores"),
    pytest.param("0x10", "16", False, id="no_hex"),
    pytest.param("١٢", "12", False, id="no_other_scripts_digits"),
    pytest.param("true", "1", False, id="bool_word_is_text"),
    # an expected float takes an int or float within the tolerance
    pytest.param("3", "3.0", True, id="integer_for_float"),
    pytest.param("1000000007", "1e9", True, id="integer_within_relative_tolerance"),
    pytest.param("0.3333333", "0.333333333", True, id="absolute_tolerance"),
    pytest.param("1000000.5", "1000000.0", True, id="relative_tolerance"),
    pytest.param("0.001", "0.002", False, id="float_too_far"),
    pytest.param("1E5", "100000.0", True, id="capital_exponent"),
    pytest.param("1e+5", "1e5", True, id="signed_exponent"),
    pytest.param(".5", "0.5", True, id="no_whole_part"),
    pytest.param("5.", "5.0", True, id="no_fraction"),
    pytest.param("-0.0", "0.0", True, id="negative_zero_float"),
    pytest.param("+.5e-3", "0.0005", True, id="sign_dot_exponent"),
    pytest.param("1_000.0", "1000.0", False, id="no_underscores_in_floats"),
    pytest.param("١٢.٥", "12.5", False, id="no_other_scripts_in_floats"),
    pytest.param("1e", "1.0", False, id="exponent_without_digits"),
    pytest.param("1.2.3", "1.2", False, id="two_dots"),
    pytest.param(".", "0.0", False, id="lone_dot"),
    pytest.param("1." + "0" * (MAX_NUMBER_CHARS - 2), "1.0", True, id="float_at_the_cap"),
    pytest.param("1." + "0" * (MAX_NUMBER_CHARS - 1), "1.0", False, id="float_over_the_cap_is_text"),
    # non-finite equals only the same text
    pytest.param("9e999", BIG, False, id="hack_overflow_for_huge_integer"),
    pytest.param("9e999", BIG + ".0", False, id="overflow_for_huge_float"),
    pytest.param("9e999", "1e999", False, id="two_overflows_differ"),
    pytest.param("1e999", "1e999", True, id="same_overflow_text"),
    pytest.param("inf", "1e999", False, id="inf_word_vs_overflow"),
    pytest.param("1e308", "inf", False, id="finite_vs_inf"),
    pytest.param("nan", "nan", True, id="same_nan_text"),
    pytest.param("nan", "0", False, id="nan_vs_integer"),
    pytest.param("nan", "0.0", False, id="nan_vs_float"),
]


@pytest.mark.parametrize(("got", "want", "equal"), TOKENS)
def test_tokens(got: str, want: str, equal: bool) -> None:
    assert tokens_equal(got, want, TOLERANCE) is equal
    difference = COMPARATORS["tokens_float"](got, want, TOLERANCE)
    assert (difference is None) is equal


COMPARISONS = [
    pytest.param("lines_float", "3\n", "3", True, id="trailing_newline"),
    pytest.param("lines_float", "3  \n\n\n", "3\n", True, id="trailing_spaces_and_empty_lines"),
    pytest.param("lines_float", "1\n", "1\n2\n", False, id="missing_line"),
    pytest.param("lines_float", "1\n2\n3\n", "1\n2\n", False, id="extra_line"),
    pytest.param("lines_float", "", "0\n", False, id="empty_output"),
    pytest.param("lines_float", "2.5 1e-7", "2.5000001 0.0", True, id="floats_in_a_line"),
    pytest.param("lines_float", "1e9 123456800.0 1e-7", "1000000007 123456789 0", False, id="hack_floats_for_integers"),
    pytest.param("lines_float", "1 2 3", "3 2 1", False, id="no_reordering"),
    pytest.param("lines_float", "1\n2", "2\n1", False, id="no_line_reordering"),
    pytest.param("lines_float", "1  2", "1 2", True, id="inner_whitespace"),
    pytest.param("lines_float", "1 2", "1\n2", False, id="lines_keep_layout"),
    pytest.param("lines_float", "1\r\n2\r\n", "1\n2\n", True, id="crlf_output"),
    pytest.param("lines", "3.0000001", "3.0", False, id="lines_no_tolerance"),
    pytest.param("lines", "007", "7", False, id="lines_no_number_rules"),
    pytest.param("lines", "a b \n", "a b", True, id="lines_trailing_whitespace"),
    pytest.param("tokens_float", "1\n2", "1 2", True, id="tokens_ignore_layout"),
    pytest.param("tokens_float", "1 2", "1 2 3", False, id="tokens_missing_one"),
    pytest.param("tokens_float", "1e9\n", "1000000007", False, id="tokens_hack_exponent"),
    pytest.param("exact", "3\n", "3", False, id="exact_newline_counts"),
    pytest.param("exact", "3\n", "3\n", True, id="exact_equal"),
]


@pytest.mark.parametrize(("name", "output", "expected", "equal"), COMPARISONS)
def test_comparators(name: str, output: str, expected: str, equal: bool) -> None:
    difference = COMPARATORS[name](output, expected, TOLERANCE)
    assert (difference is None) is equal
    assert equal or difference


MESSAGES = [
    pytest.param("lines_float", "1\n5\n", "1\n4\n", "line 2: expected '4', got '5'", id="names_the_line"),
    pytest.param("tokens_float", "1 1e9", "1 1000000007", "token 2: expected '1000000007', got '1e9'", id="token"),
    pytest.param("lines_float", "1\n", "1\n2\n", "expected 2 lines, got 1", id="count"),
    pytest.param(
        "tokens_float",
        "1" * 1000,
        "2",
        f"token 1: expected '2', got '{'1' * 80}... [920 more]'",
        id="long_token_trimmed",
    ),
]


@pytest.mark.parametrize(("name", "output", "expected", "message"), MESSAGES)
def test_mismatch_message(name: str, output: str, expected: str, message: str) -> None:
    assert COMPARATORS[name](output, expected, TOLERANCE) == message


def test_tolerance_zero_is_exact_for_floats() -> None:
    assert tokens_equal("0.5", "0.50", 0.0)
    assert not tokens_equal("0.5000001", "0.5", 0.0)


# -------------------------------------------------------------------------------- bounded work on junk

JUNK = [
    pytest.param("1" * 20_000, id="digits_20k"),
    pytest.param("1" * MEGABYTE, id="digits_1mb"),
    pytest.param("1" * (MEGABYTE - 1) + "x", id="digits_then_letter_1mb"),
    pytest.param("1" * (MEGABYTE - 1) + ".", id="digits_then_dot_1mb"),
    pytest.param("1" * 10_000 + "." + "1" * 10_000, id="float_like_20k"),
    pytest.param("1." * (MEGABYTE // 2), id="dots_1mb"),
    pytest.param("1e" * (MEGABYTE // 2), id="exponents_1mb"),
    pytest.param("-" + "0" * MEGABYTE, id="signed_zeros_1mb"),
]


@pytest.mark.parametrize("junk", JUNK)
@pytest.mark.parametrize("name", ["lines_float", "tokens_float"])
@pytest.mark.parametrize("expected", ["5", "1.5", "1" * 30])
def test_a_long_token_costs_the_python_work_of_a_short_one(name: str, expected: str, junk: str) -> None:
    compare_with = COMPARATORS[name]
    short = _compare_lines_run(lambda: compare_with(junk[:20], expected, TOLERANCE))
    long = _compare_lines_run(lambda: compare_with(junk, expected, TOLERANCE))
    assert compare_with(junk, expected, TOLERANCE) is not None
    assert long <= short


@pytest.mark.parametrize("name", ["lines_float", "tokens_float"])
def test_megabyte_of_numbers_costs_linear_work(name: str) -> None:
    def work(tokens: int) -> int:
        output, expected = "1.0\n" * tokens, "1.00\n" * tokens  # every token matches, none by text
        return _compare_lines_run(lambda: COMPARATORS[name](output, expected, TOLERANCE))

    assert COMPARATORS[name]("1.0\n" * (MEGABYTE // 4), "1.00\n" * (MEGABYTE // 4), TOLERANCE) is None
    assert work(2000) - work(1000) == work(1000) - work(0)


def test_megabyte_of_exponents_fails_at_the_first_token() -> None:
    output = "1e9 " * (MEGABYTE // 4)
    expected = "1000000007 " * (MEGABYTE // 4)
    work = _compare_lines_run(lambda: COMPARATORS["tokens_float"](output, expected, TOLERANCE))
    assert work < 100


# ------------------------------------------------------------------------------------------ json_equal

JSON_VALUES = [
    pytest.param([0, 1], [0, 1], True, id="list"),
    pytest.param((0, 1), [0, 1], True, id="tuple_for_list"),
    pytest.param({0, 1}, [0, 1], False, id="set_is_never_a_list"),
    pytest.param(frozenset({0, 1}), [0, 1], False, id="frozenset_is_never_a_list"),
    pytest.param([1, 0], [0, 1], False, id="list_order"),
    pytest.param([0], [0, 1], False, id="list_prefix"),
    pytest.param([1], 1, False, id="wrapped"),
    pytest.param(True, 1, False, id="bool_is_not_int"),
    pytest.param(1, True, False, id="int_is_not_bool"),
    pytest.param(True, 1.0, False, id="bool_is_not_float"),
    pytest.param(False, False, True, id="bool"),
    pytest.param(1000000007, 1000000007, True, id="int"),
    pytest.param(1e9, 1000000007, False, id="hack_float_for_int"),
    pytest.param(1000000007.0, 1000000007, False, id="hack_integral_float_for_int"),
    pytest.param([1e9, 123456800.0, 1e-7], [1000000007, 123456789, 0], False, id="hack_floats_for_ints"),
    pytest.param(0.0, 0, False, id="zero_float_for_int"),
    pytest.param(1, 1.0, True, id="int_for_float"),
    pytest.param(0.1 + 0.2, 0.3, True, id="float_tolerance"),
    pytest.param(0.31, 0.3, False, id="float_too_far"),
    pytest.param(10**400, 1.0, False, id="huge_int_for_float"),
    pytest.param(10**400, 1e308, False, id="huge_int_overflows_float"),
    pytest.param(math.inf, 10**309, False, id="hack_inf_for_huge_int"),
    pytest.param(math.inf, 1e308, False, id="inf_for_finite_float"),
    pytest.param(1e308, math.inf, False, id="finite_for_inf"),
    pytest.param(math.inf, math.inf, True, id="inf"),
    pytest.param(-math.inf, math.inf, False, id="inf_sign"),
    pytest.param(math.nan, math.nan, False, id="nan_equals_nothing"),
    pytest.param(math.nan, 0.0, False, id="nan_for_float"),
    pytest.param(LongInt("1" * 5000), (10**5000 - 1) // 9, True, id="long_int"),
    pytest.param(LongInt("1" * 4999 + "2"), (10**5000 - 1) // 9, False, id="long_int_last_digit"),
    pytest.param((10**5000 - 1) // 9, LongInt("1" * 5000), True, id="huge_int_for_long_int"),
    pytest.param(LongInt("1" * 5000), 1.0, False, id="long_int_for_float"),
    pytest.param(LongInt("1" * 5000), 1, False, id="long_int_for_small_int"),
    pytest.param({"a": 1}, {"a": 1.0}, True, id="dict"),
    pytest.param({"a": 1, "b": 2}, {"a": 1}, False, id="dict_extra_key"),
    pytest.param({"a": 1}, {"a": 1, "b": 2}, False, id="dict_missing_key"),
    pytest.param({1: "a"}, {"1": "a"}, True, id="int_key_for_string_key"),
    pytest.param({-1: "a"}, {"-1": "a"}, True, id="negative_int_key"),
    pytest.param({1: "a", "1": "a"}, {"1": "a", "2": "a"}, False, id="int_and_string_key_collide"),
    pytest.param({True: "a"}, {"true": "a"}, False, id="bool_key"),
    pytest.param({True: "a"}, {"1": "a"}, False, id="bool_key_is_not_int"),
    pytest.param({1.0: "a"}, {"1.0": "a"}, False, id="float_key"),
    pytest.param({(1,): "a"}, {"(1,)": "a"}, False, id="tuple_key"),
    pytest.param([("a", 1)], {"a": 1}, False, id="pairs_are_not_a_dict"),
    pytest.param("a", "A", False, id="string_case"),
    pytest.param(b"a", "a", False, id="bytes_are_not_str"),
    pytest.param(1 + 0j, 1, False, id="complex_is_not_int"),
    pytest.param(1 + 0j, 1.0, False, id="complex_is_not_float"),
    pytest.param(None, None, True, id="null"),
    pytest.param(None, 0, False, id="null_vs_zero"),
    pytest.param(Handle("Node", 1), None, False, id="handle_vs_null"),
    pytest.param(Handle("Node", 1), {}, False, id="handle_vs_dict"),
    pytest.param(Handle("list", 1), [], False, id="handle_vs_list"),
    pytest.param([Handle("Node", 1)], [None], False, id="handle_in_a_list"),
]


@pytest.mark.parametrize(("got", "want", "equal"), JSON_VALUES)
def test_json_equal(got: Any, want: Any, equal: bool) -> None:
    assert json_equal(got, want, TOLERANCE) is equal


def test_a_handle_does_not_equal_itself() -> None:
    handle = Handle("Node", 1)
    assert not json_equal(handle, handle, TOLERANCE)


@pytest.mark.parametrize("depth", [5000, 50_000])
def test_json_equal_compares_deep_values_without_recursion(depth: int) -> None:
    assert json_equal(_nested_list(depth), _nested_list(depth), TOLERANCE)
    assert not json_equal(_nested_list(depth), _nested_list(depth + 1), TOLERANCE)


# ------------------------------------------------------------------------------- what a program sends

RESULTS = [
    pytest.param("1e9", 1000000007, False, id="hack_exponent_for_int"),
    pytest.param("1000000007.0", 1000000007, False, id="hack_integral_float_for_int"),
    pytest.param("[1e9,123456800.0,1e-7]", [1000000007, 123456789, 0], False, id="hack_floats_for_ints"),
    pytest.param('{"f":"inf"}', 10**309, False, id="hack_tagged_inf_for_huge_int"),
    pytest.param("true", 1, False, id="hack_true_for_one"),
    pytest.param("1", True, False, id="one_for_true"),
    pytest.param('{"s":[1,2]}', [1, 2], False, id="set_for_list"),
    pytest.param('{"t":[1,2]}', [1, 2], True, id="tuple_for_list"),
    pytest.param('{"d":[[1,"a"],[2,"b"]]}', {"1": "a", "2": "b"}, True, id="int_keys"),
    pytest.param('{"h":[7,"Node"]}', None, False, id="handle"),
    pytest.param("1" * 5000, (10**5000 - 1) // 9, True, id="integer_of_5000_digits"),
    pytest.param("1" * 4999 + "2", (10**5000 - 1) // 9, False, id="integer_of_5000_digits_differs"),
    pytest.param("[" * 60 + "0" + "]" * 60, _nested_list(60), False, id="deep_zero_vs_deep_empty"),
]


@pytest.mark.parametrize(("text", "want", "equal"), RESULTS)
def test_decoded_result_against_expected(text: str, want: Any, equal: bool) -> None:
    assert json_equal(_decode(text), want, TOLERANCE) is equal


# ---------------------------------------------------------------------------------------- decode_value

DECODED = [
    pytest.param("null", None, id="null"),
    pytest.param("true", True, id="true"),
    pytest.param("0", 0, id="zero"),
    pytest.param("-0", 0, id="minus_zero"),
    pytest.param("1.0", 1.0, id="float_stays_float"),
    pytest.param("1e2", 100.0, id="exponent_is_float"),
    pytest.param('"a\\"b"', 'a"b', id="string"),
    pytest.param("[1,[2]]", [1, [2]], id="list"),
    pytest.param('{"t":[]}', (), id="empty_tuple"),
    pytest.param('{"t":[1,{"t":[2]}]}', (1, (2,)), id="nested_tuple"),
    pytest.param('{"s":[1,2]}', {1, 2}, id="set"),
    pytest.param('{"fs":[{"t":[1]}]}', frozenset({(1,)}), id="frozenset_of_tuple"),
    pytest.param('{"d":[]}', {}, id="empty_dict"),
    pytest.param('{"d":[["a",1],[{"t":[1,2]},null]]}', {"a": 1, (1, 2): None}, id="dict_with_tuple_key"),
    pytest.param('{"b":"aGk="}', b"hi", id="bytes"),
    pytest.param('{"b":""}', b"", id="empty_bytes"),
    pytest.param('{"f":"-inf"}', -math.inf, id="negative_inf"),
    pytest.param('{"f":"nan"}', math.nan, id="nan"),
    pytest.param('{"c":[1,-2.5]}', complex(1, -2.5), id="complex"),
    pytest.param('{"c":[{"f":"inf"},0]}', complex(math.inf, 0), id="complex_inf"),
    pytest.param('{"h":[7,"Node"]}', Handle("Node", 7), id="handle"),
    pytest.param("1" * 4300, (10**4300 - 1) // 9, id="int_of_4300_digits"),
    pytest.param("1" * 4301, LongInt("1" * 4301), id="long_int"),
    pytest.param('"[[[[\\"[[["', '[[[["[[[', id="brackets_in_a_string_do_not_nest"),
]


@pytest.mark.parametrize(("text", "value"), DECODED)
def test_decode(text: str, value: Any) -> None:
    assert _same(_decode(text), value)


MALFORMED = [
    pytest.param("", "not JSON", id="empty"),
    pytest.param("[1,", "not JSON", id="truncated"),
    pytest.param("[1] 2", "not JSON", id="trailing_data"),
    pytest.param('"abc', "not JSON", id="unterminated_string"),
    pytest.param('"\\"' + "[" * 100, "not JSON", id="unterminated_string_of_brackets"),
    pytest.param("NaN", "NaN is not JSON", id="nan_literal"),
    pytest.param("[-Infinity]", "-Infinity is not JSON", id="infinity_literal"),
    pytest.param("9e999", "overflows a float", id="hack_overflowing_literal"),
    pytest.param("1." + "0" * MAX_NUMBER_CHARS, "number literal", id="float_literal_over_the_cap"),
    pytest.param('{"a":1}', "unknown tag 'a'", id="raw_object"),
    pytest.param("{}", "got 0 keys", id="empty_object"),
    pytest.param('{"t":[1],"s":[1]}', "got 2 keys", id="two_tags"),
    pytest.param('{"t":[1],"t":[2]}', "got 2 keys", id="repeated_tag"),
    pytest.param('{"x":[1]}', "unknown tag", id="unknown_tag"),
    pytest.param('{"t":1}', "needs a JSON array", id="tuple_of_a_number"),
    pytest.param('{"t":{"t":[]}}', "needs a JSON array", id="tuple_of_a_tuple"),
    pytest.param('{"s":[[1]]}', "unhashable", id="set_of_lists"),
    pytest.param('{"s":[1,1]}', "twice", id="set_with_a_repeat"),
    pytest.param('{"s":[1,true]}', "twice", id="set_of_one_and_true"),
    pytest.param('{"d":[[1]]}', "needs 2 items", id="dict_entry_of_one"),
    pytest.param('{"d":[1]}', "needs a JSON array", id="dict_entry_not_a_pair"),
    pytest.param('{"d":[[[1],2]]}', "unhashable", id="dict_list_key"),
    pytest.param('{"d":[[1,2],[1,3]]}', "twice", id="dict_repeated_key"),
    pytest.param('{"b":"a"}', "base64", id="base64_length"),
    pytest.param('{"b":"a b="}', "base64", id="base64_space"),
    pytest.param('{"b":"é"}', "base64", id="base64_non_ascii"),
    pytest.param('{"b":[1]}', "base64", id="bytes_of_a_list"),
    pytest.param('{"f":"Infinity"}', "tag 'f'", id="non_finite_spelling"),
    pytest.param('{"f":1.5}', "tag 'f'", id="non_finite_of_a_number"),
    pytest.param('{"f":["inf"]}', "tag 'f'", id="non_finite_of_a_list"),
    pytest.param('{"c":[1]}', "needs 2 items", id="complex_of_one"),
    pytest.param('{"c":[true,1]}', "two numbers", id="complex_of_a_bool"),
    pytest.param('{"c":["1",1]}', "two numbers", id="complex_of_a_string"),
    pytest.param('{"c":[' + BIG + ",0]}", "too large", id="complex_overflow"),
    pytest.param('{"h":["7","Node"]}', "tag 'h'", id="handle_with_a_string_id"),
    pytest.param('{"h":[7,1]}', "tag 'h'", id="handle_with_a_number_name"),
    pytest.param('{"h":[true,"Node"]}', "tag 'h'", id="handle_with_a_bool_id"),
]


@pytest.mark.parametrize(("text", "message"), MALFORMED)
def test_malformed(text: str, message: str) -> None:
    with pytest.raises(MalformedValue, match=message):
        _decode(text)


LIMITS = [
    pytest.param("[[1]]", 2, True, id="at_the_depth"),
    pytest.param("[[1]]", 1, False, id="over_the_depth"),
    pytest.param('{"t":[1]}', 2, True, id="a_tag_is_two_levels"),
    pytest.param('{"t":[1]}', 1, False, id="a_tag_over_the_depth"),
    pytest.param('["\\\\",[1]]', 2, True, id="escaped_backslash_before_a_list"),
    pytest.param('["\\\\",[1]]', 1, False, id="escaped_backslash_then_too_deep"),
    pytest.param("[]" * 1000, 1, False, id="flat_but_not_json"),
]


@pytest.mark.parametrize(("text", "max_depth", "fits"), LIMITS)
def test_depth_limit(text: str, max_depth: int, fits: bool) -> None:
    if fits:
        _decode(text, max_depth=max_depth)
        return
    with pytest.raises(MalformedValue):
        _decode(text, max_depth=max_depth)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("[" * 5000 + "]" * 5000, id="list_5000_deep"),
        pytest.param('{"t":' * 5000 + "[]" + "}" * 5000, id="tag_chain_5000_deep"),
        pytest.param('{"t":[' * 3000 + "]}" * 3000, id="tuple_3000_deep"),
        pytest.param("[" * MEGABYTE, id="unclosed_megabyte"),
        pytest.param('["' + '\\"[' * 100_000, id="escaped_quotes_hide_nothing"),
    ],
)
def test_deep_values_are_malformed_not_a_recursion_error(text: str) -> None:
    with pytest.raises(MalformedValue):
        _decode(text, max_depth=100)


def test_depth_check_work_does_not_grow_with_depth() -> None:
    def work(depth: int) -> int:
        def attempt() -> None:
            with pytest.raises(MalformedValue, match="nests"):
                _decode("[" * depth + "]" * depth, max_depth=100)

        return _compare_lines_run(attempt)

    assert work(MEGABYTE // 2) == work(5000)


@pytest.mark.parametrize(
    ("text", "max_bytes", "fits"),
    [
        pytest.param('"ab"', 4, True, id="ascii_at_the_limit"),
        pytest.param('"abc"', 4, False, id="ascii_over_the_limit"),
        pytest.param('"éé"', 6, True, id="utf8_at_the_limit"),
        pytest.param('"éé"', 5, False, id="limit_counts_utf8_bytes"),
    ],
)
def test_size_limit(text: str, max_bytes: int, fits: bool) -> None:
    if fits:
        _decode(text, max_bytes=max_bytes)
        return
    with pytest.raises(MalformedValue, match=f"over {max_bytes} bytes"):
        _decode(text, max_bytes=max_bytes)


def test_megabyte_integer_decodes_exactly() -> None:
    value = _decode("9" * MEGABYTE, max_bytes=2 * MEGABYTE)
    assert value == LongInt("9" * MEGABYTE)
    assert not json_equal(value, 10**300, TOLERANCE)


def test_megabyte_of_small_numbers_decodes() -> None:
    text = "[" + ",".join(["1e9", "123456789", "-0.5"] * 50_000) + "]"
    value = _decode(text, max_bytes=2 * MEGABYTE)
    assert len(value) == 150_000
    assert not json_equal(value, [1000000007, 123456789, -0.5] * 50_000, TOLERANCE)


ROUND_TRIPS = [
    pytest.param(None, id="null"),
    pytest.param([True, False, 0, -5, 2.5, "é\ud800"], id="scalars_and_a_lone_surrogate"),
    pytest.param((1, (2.5, "x")), id="tuples"),
    pytest.param({1, "a", (2, 3)}, id="set"),
    pytest.param(frozenset({frozenset({1})}), id="frozenset_of_frozenset"),
    pytest.param({"a": [1], 2: {(3,): None}}, id="dicts"),
    pytest.param(b"\x00\xffbytes", id="bytes"),
    pytest.param([math.inf, -math.inf], id="infinities"),
    pytest.param(complex(-1.5, math.inf), id="complex"),
    pytest.param([Handle("Node", 3)], id="handle"),
    pytest.param(10**4000, id="int_of_4001_digits"),
]


@pytest.mark.parametrize("value", ROUND_TRIPS)
def test_encode_then_decode(value: Any) -> None:
    assert _same(_decode(encode_value(value)), value)


@pytest.mark.parametrize("value", [object(), [1, object()], type("Text", (str,), {})("a"), {1: range(3)}])
def test_encode_refuses_what_is_not_plain(value: Any) -> None:
    with pytest.raises(TypeError, match="not a plain value"):
        encode_value(value)


# -------------------------------------------------------------------------------------- describe_value

DESCRIPTIONS = [
    pytest.param(None, "None", id="null"),
    pytest.param([1, 2.5, "a", True], "[1, 2.5, 'a', True]", id="list"),
    pytest.param((1,), "(1,)", id="one_tuple"),
    pytest.param((1, 2), "(1, 2)", id="tuple"),
    pytest.param(set(), "set()", id="empty_set"),
    pytest.param({1}, "{1}", id="set"),
    pytest.param(frozenset({1}), "frozenset({1})", id="frozenset"),
    pytest.param({"a": [1], 2: None}, "{'a': [1], 2: None}", id="dict"),
    pytest.param(b"hi", "b'hi'", id="bytes"),
    pytest.param(complex(1, 2), "(1+2j)", id="complex"),
    pytest.param([math.inf, math.nan], "[inf, nan]", id="non_finite"),
    pytest.param(Handle("Node", 3), "<Node object>", id="handle"),
    pytest.param(object(), "<object>", id="other_object"),
    pytest.param(LongInt("1" * 5000), "1" * 27 + "...", id="long_int"),
    pytest.param("x" * MEGABYTE, "'" + "x" * 26 + "...", id="megabyte_string"),
    pytest.param(list(range(MEGABYTE)), "[0, 1, 2, 3, 4, 5, 6, 7, 8,...", id="megabyte_list"),
    pytest.param(_nested_list(200_000), "[" * 27 + "...", id="deep_list"),
]


@pytest.mark.parametrize(("value", "text"), DESCRIPTIONS)
def test_describe_value(value: Any, text: str) -> None:
    assert describe_value(value, 30) == text


def test_describe_work_does_not_grow_with_the_value() -> None:
    def work(value: Any) -> int:
        return _compare_lines_run(lambda: describe_value(value, 100))

    assert work(list(range(MEGABYTE))) == work(list(range(1000)))
    assert work(_nested_list(100_000)) == work(_nested_list(1000))
