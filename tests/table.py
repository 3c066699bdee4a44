"""A table of steps for a pure `decide` function, read like OpenEMS's `ControllerTest`.

A use case's decision is a function of what it sees now and of the time. Its tests read
best as a run of cycles: the clock leaps, a few inputs change, and the outputs that a
user would notice are what the step expects. Inputs carry over from step to step (a
step names only what changes), the clock only moves when a step says so, and a failure
names the step and prints the whole run up to it as a table::

    from tests.table import Step, run_table

    @dataclass(frozen=True)
    class Site:                   # the inputs, flat, in the units the table reads best in
        grid_kw: float | None = 0.0
        soc_pct: float = 50.0

    def shave(site: Site, now: datetime) -> dict[str, object]:
        decision = decide(CONFIG, kw(site.grid_kw), pool(site.soc_pct))
        return {"target_kw": decision.target_w / KW, "mode": decision.mode}

    run_table(shave, Site(), [
        Step("a load step is shaved to the threshold",
             inputs={"grid_kw": 520}, expect={"target_kw": -120, "mode": ShavingMode.SHAVING}),
        Step("the load is gone: recharge", advance=timedelta(minutes=10),
             inputs={"grid_kw": 300}, expect={"target_kw": 50}),
        Step("the battery runs empty", inputs={"soc_pct": 10}, expect={"target_kw": 0}),
    ])

and when a step fails::

    AssertionError: step 2 "the load is gone: recharge" at +0:10:00: target_kw expected 50, got 40
    #  time      step                                    changed      expected
    1  +0:00:00  a load step is shaved to the threshold  grid_kw=520  ✓ target_kw=-120 mode=…
    2  +0:10:00  the load is gone: recharge              grid_kw=300  ✗ target_kw=50 (got 40)
    inputs at step 2: Site(grid_kw=300, soc_pct=50.0)
    result: {'target_kw': 40.0, 'mode': <ShavingMode.RECHARGING: 'recharging'>}

The OpenEMS shape, in Python terms: `TestCase().timeleap(...)` is `advance`,
`.input(channel, value)` an entry of `inputs`, `.output(channel, value)` an entry of
`expect` (only the named outputs are checked), and a `ControllerTest`'s dummy components
are the inputs dataclass. `carry` folds an output back into the next step's inputs,
for a device that follows its command (a battery reaching its target) or a decision
that takes its own previous state.

Outputs are looked up by name: a key of a mapping result, else an attribute (a
dataclass or a named tuple). Numbers compare within 1e-6 (absolute, in the table's own
unit) or 1e-9 (relative), NaN equals NaN, True is not 1; anything else compares with
``==``, so `pytest.approx(...)` works as an expected value. Pure functions only: actors
have their own tests, with channels.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, TypeVar

from edge_controller.common.clock import ManualClock

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["START", "Step", "matches", "run_table"]

Inputs = TypeVar("Inputs", bound="DataclassInstance")
Result = TypeVar("Result")

START = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)
"""Where a table's clock starts when the test brings no clock of its own."""

ABS_TOL = 1e-6
REL_TOL = 1e-9


@dataclass(frozen=True, slots=True)
class Step:
    """One cycle: leap the clock by `advance`, change `inputs`, check `expect`.

    `name` says what happens in this step, for the failure message. `inputs` maps
    field names of the table's inputs dataclass to their new values (the others keep
    theirs); `expect` maps output names to the values the step must produce (outputs
    not named are not checked; an empty `expect` only runs the step).
    """

    name: str
    inputs: Mapping[str, object] = field(default_factory=dict)
    expect: Mapping[str, object] = field(default_factory=dict)
    advance: timedelta | float = 0.0


def matches(expected: object, actual: object) -> bool:
    """Whether an output is what a step expects: floats within tolerance, NaN = NaN."""
    if isinstance(expected, bool) or isinstance(actual, bool):  # True is not 1 W
        return isinstance(expected, bool) and isinstance(actual, bool) and expected == actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        if math.isnan(expected) or math.isnan(actual):
            return math.isnan(expected) and math.isnan(actual)
        return math.isclose(expected, actual, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    return expected == actual


class _Missing:
    def __repr__(self) -> str:
        return "<no such output>"


_MISSING = _Missing()


def _output(result: object, name: str) -> object:
    if isinstance(result, Mapping):
        return result.get(name, _MISSING)
    return getattr(result, name, _MISSING)


def _show(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, Enum):
        return f"{type(value).__name__}.{value.name}"
    return repr(value)


def _pairs(values: Mapping[str, object]) -> str:
    return " ".join(f"{name}={_show(value)}" for name, value in values.items()) or "-"


@dataclass(slots=True)
class _Row:
    time: str
    name: str
    changed: str
    checked: str
    ok: bool


def _table(rows: Sequence[_Row]) -> str:
    cells = [["#", "time", "step", "changed", "expected"]] + [
        [str(number), row.time, row.name, row.changed, ("✓ " if row.ok else "✗ ") + row.checked]
        for number, row in enumerate(rows, start=1)
    ]
    widths = [max(len(cell[col]) for cell in cells) for col in range(4)]
    lines = []
    for number, time, name, changed, checked in cells:
        padded = [time.ljust(widths[1]), name.ljust(widths[2]), changed.ljust(widths[3])]
        lines.append("  ".join([number.rjust(widths[0]), *padded, checked]).rstrip())
    return "\n".join(lines)


def run_table(
    decide: Callable[[Inputs, datetime], Result],
    start: Inputs,
    steps: Sequence[Step],
    *,
    clock: ManualClock | None = None,
    carry: Callable[[Inputs, Result], Inputs] | None = None,
) -> list[Result]:
    """Run `steps` in order through `decide(inputs, now)`; return each step's result.

    `start` holds every input's value before the first step; `clock` (default: a
    `ManualClock` at `START`) is advanced by each step before it decides, so a test
    can share it with whatever else reads the time. `carry(inputs, result)`, when
    given, turns a step's result into the inputs the next step starts from.

    Raises:
        AssertionError: at the first step whose outputs differ from its `expect`, or
            that names an input or output that does not exist, with the run so far as
            a table. An exception raised by `decide` itself propagates with a note
            naming the step.
    """
    clock = clock if clock is not None else ManualClock(START)
    began = clock.now()
    inputs = start
    rows: list[_Row] = []
    results: list[Result] = []
    for number, step in enumerate(steps, start=1):
        now = clock.advance(step.advance)
        title = f'step {number} "{step.name}" at +{now - began}'
        try:
            inputs = dataclasses.replace(inputs, **step.inputs)
        except TypeError as error:
            raise AssertionError(f"{title}: {error}") from None
        try:
            result = decide(inputs, now)
        except Exception as error:
            error.add_note(f"raised in {title} with inputs {inputs!r}")
            raise
        results.append(result)
        actual = {name: _output(result, name) for name in step.expect}
        wrong = [name for name, want in step.expect.items() if not matches(want, actual[name])]
        checked = " ".join(
            f"{name}={_show(want)}" + (f" (got {_show(actual[name])})" if name in wrong else "")
            for name, want in step.expect.items()
        )
        rows.append(
            _Row(f"+{now - began}", step.name, _pairs(step.inputs), checked or "-", not wrong)
        )
        if wrong:
            detail = "; ".join(
                f"{name} expected {_show(step.expect[name])}, got {_show(actual[name])}"
                for name in wrong
            )
            raise AssertionError(
                f"{title}: {detail}\n{_table(rows)}\ninputs at step {number}: {inputs!r}\n"
                f"result: {result!r}"
            )
        if carry is not None:
            inputs = carry(inputs, result)
    return results
