"""Our side of the market, pure: bids from forecasts, the optimal plan, settlement.

No I/O here (the import rules in pyproject.toml keep it so): the actor that bids and
writes dispatches is the market-bid use case (`use_cases.market_bid`); the exchange we
serve for tests and demos is `servers.market`. Both count delivery periods with
`trading.periods`.
"""
