"""Dispatches as this controller reads and writes them: pure rules, and three shells.

Pure (no event loop, network or disk; the `pure_cores` import rule in pyproject.toml
holds them to it), so the use cases, the scenario runner and the tests share one
answer to each question:

- `payload`: what a dispatch's payload asks for, with errors naming the field;
- `power_check`: whether a dispatch's power fits what its batteries can do together;
- `schedule`: where a dispatch stands at a given time, and when it next starts;
- `offline`: which known dispatches run when, without the dispatch service.

Shells, each the I/O around one of the rules (kept beside them, not in a package of
their own, because each has exactly one rule to serve and no actor of its own):

- `site_bounds`: asks the Microgrid API for the batteries' rated bounds (`power_check`);
- `cache`: the last known dispatches on disk, for a restart without the service
  (`offline`);
- `producer`: the Dispatch API client for whoever *creates* dispatches, the
  operator's command line and the market-bid use case (`schedule`); the controller
  itself only receives dispatches.
"""
