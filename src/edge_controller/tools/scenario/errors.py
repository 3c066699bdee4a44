"""The one error of the day loop: a site or scenario it cannot run."""

from __future__ import annotations


class ScenarioError(ValueError):
    """A site or scenario the day loop cannot run (the message says why)."""


__all__ = ["ScenarioError"]
