"""Keep the grid connection's import under a limit with the batteries."""
