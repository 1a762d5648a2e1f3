from hypothesis import given
from hypothesis import strategies as st

from fundtrail.model.amount import format_units, parse_units


@given(st.integers(min_value=-(2**256), max_value=2**256), st.integers(min_value=0, max_value=30))
def test_format_parse_round_trip_is_exact(amount, decimals):
    assert parse_units(format_units(amount, decimals), decimals) == amount
