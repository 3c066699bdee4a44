"""A local electricity market: the seed's market model behind the Electricity Trading API.

`edge-controller market-server` serves `frequenz.api.electricity_trading.v1` so that the
real `frequenz-client-electricity-trading` client (a bidding agent) can trade offline.
Modules, from core to shell:

- `model`: the members — consumer groups, wind prosumers with batteries, the manager's
  coal plant — and each period's demand and supply (pure; wind through `Weather`);
- `periods`: the delivery-period grid and gate closure (pure);
- `clearing`: the uniform-price auction and the price formula (pure);
- `orders`: order validation, states, trades, filters, pages (pure);
- `file`: the TOML market file (`config/market-default.toml`);
- `exchange`: the operations — order book, clearing at gate closure on the injected
  clock, streams;
- `convert`, `service`, `server`: the gRPC shell; `command`: the CLI subcommand
  (kept light to import: this package's `__init__` imports nothing).

In code: `MarketServer(spec, listen, keys=..., clock=...)` (`server`), or without gRPC
`MarketExchange(spec, clock=...)` (`exchange`); either clears with `clear_due(now)`.
"""
