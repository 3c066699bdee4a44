"""configured_or_all: which components a `[[use_cases]]` entry drives, or why it cannot."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_controller.framework.use_case import configured_or_all
from tests.properties import examples

CHARGERS = (81, 82, 83)


def chargers(name: str, configured: set[int], of_site: tuple[int, ...]) -> frozenset[int]:
    return configured_or_all(
        name, frozenset(configured), of_site, key="chargers", what="EV charger"
    )


def test_none_configured_means_all_of_the_site() -> None:
    assert chargers("ev", set(), CHARGERS) == {81, 82, 83}
    assert chargers("ev", {82}, CHARGERS) == {82}


def test_an_id_the_site_does_not_have_is_refused_by_name() -> None:
    refusal = (
        "use case 'car park': chargers [10] are not EV chargers of this site; "
        "its EV chargers: [81, 82, 83]"
    )
    with pytest.raises(ValueError, match=re.escape(refusal)):
        chargers("car park", {10, 81}, CHARGERS)


def test_a_site_without_any_is_refused() -> None:
    with pytest.raises(ValueError, match="use case 'ev': the site has no EV charger"):
        chargers("ev", set(), ())


@settings(max_examples=examples(500), deadline=None)
@given(
    of_site=st.frozensets(st.integers(1, 20), max_size=6),
    configured=st.frozensets(st.integers(1, 20), max_size=6),
)
def test_it_drives_what_was_asked_within_the_site_or_refuses(
    of_site: frozenset[int], configured: frozenset[int]
) -> None:
    try:
        chosen = chargers("ev", set(configured), tuple(of_site))
    except ValueError:
        assert not configured <= of_site or not of_site
        return
    assert chosen == (configured or of_site)
    assert chosen
    assert chosen <= of_site
