"""The pure power check: a requested power against what the target batteries can do."""

from __future__ import annotations

import math

import pytest

from edge_controller.dispatching.power_check import (
    InverterCapability,
    PowerProblem,
    RatedBounds,
    SiteCapability,
    power_problem,
    power_text,
    range_text,
    targeted_range,
)
from edge_controller.power.bounds import Range

SOURCE = "rated bounds from the microgrid API at grpc://site"


def symmetric(watts: float) -> Range:
    return Range(-watts, watts)


def rated(watts: float) -> RatedBounds:
    return RatedBounds(-watts, watts)


def text(problem: PowerProblem | None) -> str | None:
    return None if problem is None else problem.text


NOTHING = RatedBounds()


# The example site: four inverters, one battery each; inverter 20 also has battery 22,
# whose bounds are unknown, in the `shared` variant.
SITE = SiteCapability(
    source=SOURCE,
    inverters=(
        InverterCapability(10, rated(250e3), ((11, rated(250e3)),)),
        InverterCapability(20, rated(300e3), ((21, rated(300e3)),)),
        InverterCapability(30, rated(200e3), ((31, RatedBounds(-200e3, 150e3)),)),
        InverterCapability(40, NOTHING, ((41, rated(250e3)),)),
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
    assert text(power_problem(-5e9, SITE, None)) == (
        "-5 GW is beyond what every battery (11, 21, 31, 41) can do together: "
        "-1 MW .. +950 kW (11: -250 kW .. +250 kW, 21: -300 kW .. +300 kW, "
        "31: -200 kW .. +150 kW, 41: -250 kW .. +250 kW; " + SOURCE + ")"
    )


def test_the_sign_matters_a_battery_that_charges_less_than_it_discharges() -> None:
    problem = power_problem(200e3, SITE, (31,))
    assert problem == PowerProblem(
        "+200 kW is beyond what battery 31 can do: -200 kW .. +150 kW "
        "(31: -200 kW .. +150 kW; " + SOURCE + ")",
        forcible=True,
    )
    assert power_problem(-200e3, SITE, (31,)) is None


def test_a_battery_is_capped_by_its_inverter_and_an_inverter_caps_its_batteries() -> None:
    site = SiteCapability(
        source=SOURCE,
        inverters=(
            InverterCapability(10, rated(100e3), ((11, rated(250e3)),)),
            InverterCapability(20, rated(300e3), ((21, rated(200e3)), (22, rated(200e3)))),
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


def test_a_battery_the_site_does_not_have_is_named_and_not_forcible() -> None:
    assert power_problem(-1e3, SITE, (11, 99, 98)) == PowerProblem(
        "batteries 98, 99 not found at the site (its batteries: 11, 21, 31, 41; " + SOURCE + ")",
        forcible=False,
    )


def test_a_battery_without_bounds_is_named_and_forcible() -> None:
    site = SiteCapability(
        source=SOURCE,
        inverters=(
            InverterCapability(10, NOTHING, ((11, NOTHING),)),
            InverterCapability(20, rated(1e3), ((21, NOTHING),)),
        ),
    )
    assert power_problem(-1e3, site, None) == PowerProblem(
        "no rated power bounds known for battery 11 or its inverter 10 (" + SOURCE + ")",
        forcible=True,
    )
    # A lone battery without bounds counts with its inverter's.
    assert targeted_range(site, (21,))[0] == symmetric(1e3)


# One end reported, the other not: unknown, never unlimited (it was -inf/+inf, and
# -5 GW passed when the inverter did not cap it).
@pytest.mark.parametrize(
    ("battery", "inverter", "message"),
    [
        (
            RatedBounds(None, 250e3),
            NOTHING,
            "no rated discharge bound (lower end) known for battery 11 or its inverter 10",
        ),
        (
            RatedBounds(-250e3, None),
            RatedBounds(-300e3, None),
            "no rated charge bound (upper end) known for battery 11 or its inverter 10",
        ),
        (
            NOTHING,
            RatedBounds(None, 250e3),
            "no rated discharge bound (lower end) known for battery 11 or its inverter 10",
        ),
    ],
)
def test_an_end_reported_by_neither_battery_nor_inverter_is_refused_naming_it(
    battery: RatedBounds, inverter: RatedBounds, message: str
) -> None:
    site = SiteCapability(
        source=SOURCE, inverters=(InverterCapability(10, inverter, ((11, battery),)),)
    )
    for power_w in (-5e9, 5e9, -1e3):
        assert power_problem(power_w, site, None) == PowerProblem(
            f"{message} ({SOURCE})", forcible=True
        )


def test_an_end_one_of_them_reports_is_enough_for_a_lone_battery() -> None:
    site = SiteCapability(
        source=SOURCE,
        inverters=(
            InverterCapability(10, RatedBounds(-200e3, None), ((11, RatedBounds(None, 150e3)),)),
        ),
    )
    assert targeted_range(site, None)[0] == Range(-200e3, 150e3)
    assert text(power_problem(-5e9, site, None)) == (
        "-5 GW is beyond what every battery (11) can do together: -200 kW .. +150 kW "
        "(11: -200 kW .. +150 kW; " + SOURCE + ")"
    )


def test_a_shared_inverter_does_not_stand_in_for_a_battery_end() -> None:
    site = SiteCapability(
        source=SOURCE,
        inverters=(
            InverterCapability(
                20, rated(300e3), ((21, rated(200e3)), (22, RatedBounds(-200e3, None)))
            ),
        ),
    )
    assert text(power_problem(1e3, site, None)) == (
        "no rated charge bound (upper end) known for battery 22 (" + SOURCE + ")"
    )
    assert power_problem(1e3, site, (21,)) is None
    # An inverter reporting one end caps with that end only.
    half = SiteCapability(
        source=SOURCE,
        inverters=(
            InverterCapability(
                20, RatedBounds(-300e3, None), ((21, rated(200e3)), (22, rated(200e3)))
            ),
        ),
    )
    together, figures = targeted_range(half, None)
    assert together == Range(-300e3, 400e3)
    assert figures[-1] == "inverter 20: -300 kW .. unknown"


def test_rated_bounds_reject_nan_and_inverted_ends() -> None:
    with pytest.raises(ValueError, match="NaN"):
        RatedBounds(math.nan, None)
    with pytest.raises(ValueError, match="lower must be <= upper"):
        RatedBounds(1.0, -1.0)
    assert RatedBounds(None, 5.0).missing() == ("lower",)
    assert RatedBounds(-5.0, 5.0).known() == Range(-5.0, 5.0)
    assert range_text(RatedBounds(None, 5e3)) == "unknown .. +5 kW"


def test_a_site_rating_alone_and_with_the_batteries() -> None:
    rating = SiteCapability(source="--site-rating 500 kW", rating_w=500e3)
    assert power_problem(-500e3, rating, (11,)) is None
    assert power_problem(-5e9, rating, None) == PowerProblem(
        "-5 GW is beyond the site rating: -500 kW .. +500 kW (--site-rating 500 kW)",
        forcible=True,
    )
    both = SiteCapability(source=SOURCE + " and --site-rating 500 kW", inverters=SITE.inverters)
    both = SiteCapability(source=both.source, inverters=both.inverters, rating_w=500e3)
    assert targeted_range(both, None)[0] == symmetric(500e3)
    assert targeted_range(both, (31,))[0] == Range(-200e3, 150e3)


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
