"""Filter validation and expression building (pure logic; the store tests run them on Milvus)."""

from __future__ import annotations

import pytest

from pardus.deployments.catalogue.filters import (
    FilterError,
    SearchFilters,
    parse_filters,
    string_literal,
    to_expression,
)


def test_empty_filters_match_everything():
    assert to_expression(None) == "" and to_expression(SearchFilters()) == ""
    assert SearchFilters().is_empty()


def test_expression_combines_typed_fields():
    expr = to_expression(SearchFilters(categories=["Toys", "Home"], price_min=5, price_max=20,
                                       rating_min=4))
    assert expr == ('category in ["Toys", "Home"] and price >= 5.0 and '
                    '(price >= 0 and price <= 20.0) and rating >= 4.0')


@pytest.mark.parametrize("hostile", ['x" or id != "', 'a\\" || true || "', "\\", '"'])
def test_strings_are_escaped_literals(hostile):
    literal = string_literal(hostile)
    assert literal.startswith('"') and literal.endswith('"')
    body = literal[1:-1]
    # every quote inside is escaped, and no escape is left dangling at the end
    assert all(body[i - 1] == "\\" for i, ch in enumerate(body) if ch == '"')
    assert (len(body) - len(body.rstrip("\\"))) % 2 == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"price_min": 10, "price_max": 5}, "price_min must not be greater"),
        ({"price_min": -1}, "greater than or equal to 0"),
        ({"rating_min": 7}, "less than or equal to 5"),
        ({"categories": ["ok", "bad\x00one"]}, "control"),
        ({"categories": [""]}, "1 to 256 characters"),
        ({"categories": "Toys"}, "valid list"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
        ({"price_max": float("inf")}, "finite"),
        ({"rating_min": float("nan")}, "rating_min"),
    ],
)
def test_bad_filters_say_what_to_fix(data, message):
    with pytest.raises(FilterError, match=message):
        parse_filters(data)
