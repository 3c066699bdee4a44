"""How many examples each property test tries, by Hypothesis profile.

A property test's size is written once, as the number of examples a *nightly* run
tries (`HYPOTHESIS_PROFILE=nightly`: the search we trust before a release). Everyday
runs scale it down so that every property test stays far below pytest's timeout on a
2-core CI machine that something else is also loading:

- ``ci`` (what `make test`, and so `.ci/run`, uses): derandomized, a tenth of the nightly
  size: the same examples on every run, so a property fails there every time or never;
- ``default`` (a plain local `pytest`): random search, a fifth of the nightly size;
- ``nightly``: random search at full size.

Write ``@settings(max_examples=examples(10_000), deadline=None)``: the number stays
visible beside the test and the profile decides how much of it a run can afford.
"""

from __future__ import annotations

import os

from hypothesis import settings

PROFILE_ENV = "HYPOTHESIS_PROFILE"

SCALE_BY_PROFILE = {"nightly": 1.0, "default": 0.2, "ci": 0.1}
"""The share of a test's nightly example count that each profile tries."""

FEWEST_EXAMPLES = 20
"""Below this a property test stops being a search; small sizes are kept as written."""


def register_profiles() -> str:
    """Register the three profiles, load the one named by the environment, return it."""
    settings.register_profile("ci", derandomize=True, print_blob=True, deadline=None)
    settings.register_profile("default", deadline=None)
    settings.register_profile("nightly", deadline=None, print_blob=True)
    name = os.environ.get(PROFILE_ENV, "default")
    if name not in SCALE_BY_PROFILE:
        raise ValueError(f"{PROFILE_ENV}={name!r}: expected one of {sorted(SCALE_BY_PROFILE)}")
    settings.load_profile(name)
    return name


def examples(nightly: int) -> int:
    """The example count for this run of a test that tries ``nightly`` examples nightly."""
    scale = SCALE_BY_PROFILE.get(os.environ.get(PROFILE_ENV, "default"), 1.0)
    return max(min(nightly, FEWEST_EXAMPLES), round(nightly * scale))
