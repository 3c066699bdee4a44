"""Hold a dispatched power on a set of batteries."""
