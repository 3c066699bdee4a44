"""The pure power check: a requested power against what the target batteries can do."""

from __future__ import annotations

import math

import pytest

from edge_controller.dispatching.power_check import (
    InverterCapability,
    PowerRange,
    SiteCapability,
    power_problem,
    power_text,
    targeted_range,
)

SOURCE = "rated bounds from the microgrid API at grpc://site"


def symmetric(watts: float) -> PowerRange:
    return PowerRange(-watts, watts)


# The example site: four inverters, one battery each; inverter 20 also has battery 22,
# whose bounds are unknown, in the `shared` variant.
SITE = SiteCapability(
    source=SOURCE,
    inverters=(
        InverterCapability(10, symmetric(250e3), ((11, symmetric(250e3)),)),
        InverterCapability(20, symmetric(300e3), ((21, symmetric(300e3)),)),
        InverterCapability(30, symmetric(200e3), ((31, PowerRange(-200e3, 150e3)),)),
        InverterCapability(40, None, ((41, symmetric(250e3)),)),
    ),
)


@pytest.mark.parametrize(
    ("power_w", "batteries"),
    [
        (0.0, None),
        (-1e6, None),
        (1e6 - 50e3, None),  # battery 31 charges at most 150 kW
        (-450e3, (11, 31)),
        (150e3, (31,)),
        (-200e3, (31,)),
    ],
)
def test_powers_within_the_sum_of_the_bounds_pass(
    power_w: float, batteries: tuple[int, ...] | None
) -> None:
    assert power_problem(power_w, SITE, batteries) is None


def test_five_gigawatts_on_every_battery_names_each_and_the_source() -> None:
    assert power_problem(-5e9, SITE, None) == (
        "-5 GW is beyond what every battery (11, 21, 31, 41) can do together: "
        "-1 MW .. +950 kW (11: -250 kW .. +250 kW, 21: -300 kW .. +300 kW, "
        "31: -200 kW .. +150 kW, 41: -250 kW .. +250 kW; " + SOURCE + ")"
    )


def test_the_sign_matters_a_battery_that_charges_less_than_it_discharges() -> None:
    problem = power_problem(200e3, SITE, (31,))
    assert problem == (
        "+200 kW is beyond what battery 31 can do: -200 kW .. +150 kW "
        "(31: -200 kW .. +150 kW; " + SOURCE + ")"
    )
    assert power_problem(-200e3, SITE, (31,)) is None


def test_a_battery_is_capped_by_its_inverter_and_an_inverter_caps_its_batteries() -> None:
    site = SiteCapability(
        source=SOURCE,
        inverters=(
            InverterCapability(10, symmetric(100e3), ((11, symmetric(250e3)),)),
            InverterCapability(
                20, symmetric(300e3), ((21, symmetric(200e3)), (22, symmetric(200e3)))
            ),
        ),
    )
    assert targeted_range(site, (11,))[0] == symmetric(100e3)
    together, figures = targeted_range(site, (21, 22))
    assert together == symmetric(300e3)
    assert figures == [
        "21: -200 kW .. +200 kW",
        "22: -200 kW .. +200 kW",
        "inverter 20: -300 kW .. +300 kW",
    ]
    assert targeted_range(site, (22,))[0] == symmetric(200e3)
    assert power_problem(-301e3, site, (21, 22)) is not None


def test_an_unknown_battery_or_unknown_bounds_are_named() -> None:
    assert power_problem(-1e3, SITE, (11, 99, 98)) == (
        "batteries 98, 99 not found at the site (its batteries: 11, 21, 31, 41; " + SOURCE + ")"
    )
    site = SiteCapability(
        source=SOURCE,
        inverters=(
            InverterCapability(10, None, ((11, None),)),
            InverterCapability(20, symmetric(1e3), ((21, None),)),
        ),
    )
    assert power_problem(-1e3, site, None) == (
        "no rated power bounds known for battery 11 (" + SOURCE + ")"
    )
    # A lone battery without bounds counts with its inverter's.
    assert targeted_range(site, (21,))[0] == symmetric(1e3)


def test_a_site_rating_alone_and_with_the_batteries() -> None:
    rating = SiteCapability(source="--site-rating 500 kW", rating_w=500e3)
    assert power_problem(-500e3, rating, (11,)) is None
    assert power_problem(-5e9, rating, None) == (
        "-5 GW is beyond the site rating: -500 kW .. +500 kW (--site-rating 500 kW)"
    )
    both = SiteCapability(source=SOURCE + " and --site-rating 500 kW", inverters=SITE.inverters)
    both = SiteCapability(source=both.source, inverters=both.inverters, rating_w=500e3)
    assert targeted_range(both, None)[0] == symmetric(500e3)
    assert targeted_range(both, (31,))[0] == PowerRange(-200e3, 150e3)


def test_nothing_known_refuses_nothing_here() -> None:
    assert power_problem(-5e9, SiteCapability(source="nothing"), None) is None


@pytest.mark.parametrize(
    ("watts", "text"),
    [
        (-5e9, "-5 GW"),
        (1.5e6, "+1.5 MW"),
        (-40e3, "-40 kW"),
        (500.0, "+500 W"),
        (0.0, "0 W"),
        (-math.inf, "-inf W"),
    ],
)
def test_power_text(watts: float, text: str) -> None:
    assert power_text(watts) == text
