"""The test suite.

Imported before any test module or conftest, so it is where the library noise filters
go in first: `edge_controller.common.logging` installs them on import, before the Frequenz
packages that the conftest imports warn (frequenz-core's duplicate `CID` prefix).
"""

import edge_controller.common.logging  # noqa: F401  (imported for its filters)
