"""Our side of the market: building bids from forecasts, and the MarketBidActor."""
