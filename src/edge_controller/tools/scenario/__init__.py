"""A simulated day of the whole loop, in seconds, with a report: `edge-controller scenario`.

weather → production forecast → bids → market clearing → won trades as dispatches →
dispatch scheduling → power distribution → physics, on one `ManualClock` in one
process, with the same pure pieces the servers and actors use. The real clients
schedule on the wall clock (the trading API refuses delivery periods in the past, the
dispatch API refuses past starts), so an accelerated day cannot go over the wire.

Modules, from core to shell:

- `file`: the scenario file (`config/scenario-day.toml`), parsed with precise errors;
- `schedule`: the in-process dispatch scheduler, on the client `Dispatch` type's own
  `started_at` / `next_run_after`;
- `records`: what a run records (per step, per delivery period, per bid);
- `run`: the day loop — pure decisions per step (`control_step`) and the thin shell
  that applies them to the simulator's `SiteModel` (`run_scenario`);
- `report`: the summary (totals, settlement, checks) and the PNG plots (matplotlib,
  Agg, no pyplot);
- `command`: the `scenario` subcommand.

This package imports nothing on its own: import the module you need (`command` stays
light for the command line; `pvlib` and matplotlib load only when a scenario runs).
"""
