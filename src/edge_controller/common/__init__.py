"""What every layer may use.

The clock, waiting without losing a cancellation, TOML reading, logging.
"""
