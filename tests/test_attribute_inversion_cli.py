"""``python -m attribute_inversion reproduce --attributes``: an empty list or name, a repeated name
and an unknown name are refused with Table 1's valid names; a valid subset keeps its order."""
from __future__ import annotations

import pytest

from attribute_inversion.__main__ import build_config, parse_args
from attribute_inversion.config import PAPER_ATTRIBUTES

VALID_NAMES = ",".join(PAPER_ATTRIBUTES)


def config_for(attributes: str):
    return build_config(parse_args(["reproduce", "--attributes", attributes]))


@pytest.mark.parametrize("attributes, problem", [
    (",", "names no attribute"),
    ("", "names no attribute"),
    ("Eyeglasses,,Male", "has an empty name"),
    ("Eyeglasses,Eyeglasses", r"repeats \['Eyeglasses'\]"),
    ("Male, Eyeglasses ,Male", r"repeats \['Male'\]"),
    ("Eyeglasses,Smiling", r"unknown attribute\(s\) \['Smiling'\]"),
])
def test_bad_attribute_lists_are_refused_with_the_valid_names(attributes, problem):
    with pytest.raises(SystemExit, match=problem) as refused:
        config_for(attributes)
    assert VALID_NAMES in str(refused.value)


def test_a_valid_subset_is_used_in_the_given_order():
    assert config_for("Male, Eyeglasses").data.attributes == ("Male", "Eyeglasses")


def test_without_the_option_the_scale_keeps_its_attributes():
    assert build_config(parse_args(["reproduce"])).data.attributes == ("Eyeglasses",)
