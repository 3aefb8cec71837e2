"""Hostile display names never become live formulas in a coordinator's spreadsheet."""

from __future__ import annotations

import pytest

from facilitator.exports.cells import neutralised


@pytest.mark.parametrize(
    "name",
    [
        '=HYPERLINK("http://evil.example", "Ada")',
        "+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(1,2)",
        "\t=1+1",
        "\r=1+1",
        "\n=1+1",
    ],
)
def test_a_name_that_would_be_a_formula_is_kept_as_text(name: str) -> None:
    assert neutralised(name) == "'" + name


@pytest.mark.parametrize("value", ["Ada", "Bea = Cy", "O'Brien", "", 3, -2, 1.5, None])
def test_everything_else_is_left_as_it_is(value: object) -> None:
    assert neutralised(value) == value
