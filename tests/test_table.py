"""The table runner itself: steps carry inputs, move the clock, and fail loudly."""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import pytest

from edge_controller.common.clock import ManualClock
from tests.table import START, Step, matches, run_table


class Light(StrEnum):
    OFF = "off"
    ON = "on"


@dataclass(frozen=True)
class Room:
    lux: float = 0.0
    people: int = 0


@dataclass(frozen=True)
class Switch:
    light: Light
    seconds: float


def switch(room: Room, now: datetime) -> Switch:
    """Light on when someone is in a dark room; `seconds` since the table started."""
    on = room.people > 0 and room.lux < 100
    return Switch(Light.ON if on else Light.OFF, (now - START).total_seconds())


def test_inputs_carry_over_and_the_clock_moves_only_when_a_step_says_so() -> None:
    results = run_table(
        switch,
        Room(lux=50.0),
        [
            Step("empty dark room", expect={"light": Light.OFF, "seconds": 0.0}),
            Step("someone comes in", inputs={"people": 1}, expect={"light": Light.ON}),
            Step(
                "the sun rises an hour later",
                advance=timedelta(hours=1),
                inputs={"lux": 500.0},
                expect={"light": Light.OFF, "seconds": 3600.0},
            ),
            Step("a cloud, 30 s later", advance=30, inputs={"lux": 80.0}, expect={"seconds": 3630}),
        ],
    )
    assert [r.light for r in results] == [Light.OFF, Light.ON, Light.OFF, Light.ON]


def test_a_failing_step_is_named_and_the_run_so_far_shown_as_a_table() -> None:
    steps = [
        Step("empty dark room", expect={"light": Light.OFF}),
        Step("someone comes in", advance=60, inputs={"people": 1}, expect={"light": Light.OFF}),
        Step("never reached", expect={"light": Light.ON}),
    ]
    with pytest.raises(AssertionError) as failure:
        run_table(switch, Room(), steps)
    message = str(failure.value)
    first_line = message.splitlines()[0]
    assert first_line == (
        'step 2 "someone comes in" at +0:01:00: light expected Light.OFF, got Light.ON'
    )
    assert "✓ light=Light.OFF" in message
    assert "people=1" in message
    assert "✗ light=Light.OFF (got Light.ON)" in message
    assert "never reached" not in message
    assert "inputs at step 2: Room(lux=0.0, people=1)" in message


@pytest.mark.parametrize(
    ("step", "complaint"),
    [
        (Step("typo in an input", inputs={"peeple": 1}), "peeple"),
        (Step("typo in an output", expect={"lihgt": Light.ON}), "lihgt"),
    ],
)
def test_a_name_that_does_not_exist_fails_the_step(step: Step, complaint: str) -> None:
    with pytest.raises(AssertionError, match=complaint):
        run_table(switch, Room(), [step])


def test_carry_feeds_a_result_into_the_next_step_and_the_clock_can_be_shared() -> None:
    clock = ManualClock(START)

    def count(room: Room, now: datetime) -> dict[str, object]:
        return {"people": room.people + 1}

    results = run_table(
        count,
        Room(),
        [Step("one", expect={"people": 1}), Step("two", advance=5, expect={"people": 2})],
        clock=clock,
        carry=lambda room, result: Room(room.lux, int(str(result["people"]))),
    )
    assert [r["people"] for r in results] == [1, 2]
    assert clock.now() == START + timedelta(seconds=5)


def test_an_exception_in_decide_says_which_step_raised_it() -> None:
    def broken(room: Room, now: datetime) -> Switch:
        raise ZeroDivisionError("no")

    with pytest.raises(ZeroDivisionError) as raised:
        run_table(broken, Room(), [Step("only step")])
    assert any('step 1 "only step"' in note for note in raised.value.__notes__)


@pytest.mark.parametrize(
    ("expected", "actual", "same"),
    [
        (1.0, 1.0 + 1e-7, True),
        (1.0, 1.0001, False),
        (math.nan, math.nan, True),
        (0.0, math.nan, False),
        (1e9, 1e9 + 0.5, True),
        (True, 1, False),
        (pytest.approx(10.0, abs=1.0), 10.5, True),
        ("on", Light.ON, True),
    ],
)
def test_floats_compare_within_tolerance(expected: object, actual: object, same: bool) -> None:
    assert matches(expected, actual) is same
