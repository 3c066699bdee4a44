"""Bid the batteries' flexibility on a market and turn won bids into dispatches."""
