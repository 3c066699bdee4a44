"""The actors: thin shells that move messages and call the pure modules."""
