"""A simulated day of the whole loop, in seconds, with a report: `edge-controller scenario`.

weather → production forecast → bids → market clearing → won trades as dispatches →
dispatch scheduling → power distribution → physics, on one `ManualClock` in one
process, with the same pure pieces the servers and actors use. The real clients
schedule on the wall clock (the trading API refuses delivery periods in the past, the
dispatch API refuses past starts), so an accelerated day cannot go over the wire.

Modules, from core to shell:

- `file`: the scenario file (`config/scenario-day.toml`), parsed with precise errors;
- `errors`: `ScenarioError`, a site or scenario the loop cannot run;
- `layout`: the site's components as the loop reads them once (`SiteLayout`);
- `production`: the measured weather and the production it gives the site;
- `setup`: what is fixed for a run (`Setup`, `build_setup`);
- `market_outlook`: the prices the market model expects, without and with our order;
- `load_forecast`, `forecasts`: what the bidder knows of the coming periods;
- `schedule`: the in-process dispatch scheduler (the controller's `running_now`, the
  client `Dispatch` type's `next_run_after`);
- `state`: what carries from one step to the next (`ControllerState`);
- `site_model`: what the controller sees of the simulated site, what it sends it;
- `bidding`: one order per delivery period (optimizer or threshold), commitments
  counted as the market-bid actor counts them;
- `inverter_commands`: the running dispatches executed with the BatteryPowerActor's
  own pieces (`battery_power.decide`), the PowerManagingActor's `settle` and the
  distributor's `plan()`;
- `trades`: gate closure, clearing with our order, trades as dispatches;
- `records`: what a run records (per step, per delivery period, per bid);
- `run`: the day loop — pure decisions per step (`control_step`) and the thin shell
  that applies them to the simulator's `SiteModel` (`run_scenario`);
- `value`, `rounds`: a run's value against perfect foresight, plan against outcome;
- `report`: the summary (totals, settlement, checks) and the PNG plots (matplotlib,
  Agg, no pyplot);
- `command`: the `scenario` subcommand.

This package imports nothing on its own: import the module you need (`command` stays
light for the command line; `pvlib` and matplotlib load only when a scenario runs).
"""
