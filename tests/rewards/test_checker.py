"""What every checker's settings model accepts, whichever checker it is."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from rewards.checker import CHECKERS, load_checker

NON_FINITE = [
    pytest.param(math.nan, id="nan"),
    pytest.param(math.inf, id="infinity"),
    pytest.param(-math.inf, id="minus_infinity"),
    pytest.param("NaN", id="nan_string"),
    pytest.param("Infinity", id="infinity_string"),
]

# Every float setting of every checker: a weight, a time-out or a tolerance that is NaN or infinite makes no
# sense (a NaN weight makes every reward NaN; an infinite tolerance makes every number equal).
FLOAT_SETTINGS = [
    pytest.param(name, field, id=f"{name}.{field}")
    for name in CHECKERS
    for field, info in load_checker(name).settings_model.model_fields.items()
    if info.annotation is float
]


def test_the_float_table_has_the_settings_this_defect_was_found_on() -> None:
    names = {param.id for param in FLOAT_SETTINGS}
    assert {"math.weight", "math.timeout_s", "code.float_tolerance", "code.timeout_s"} <= names


@pytest.mark.parametrize("value", NON_FINITE)
@pytest.mark.parametrize(("checker", "field"), FLOAT_SETTINGS)
def test_non_finite_float_settings_are_rejected_naming_the_field(checker: str, field: str, value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        load_checker(checker).settings_model.model_validate({field: value})
    assert [error["loc"] for error in caught.value.errors()] == [(field,)]
