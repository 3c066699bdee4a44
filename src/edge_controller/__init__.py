"""edge-controller: an actor-framework microgrid site controller.

Power follows the passive sign convention everywhere in this package: a positive
power charges or consumes, a negative power discharges or produces.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("edge-controller")
except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
