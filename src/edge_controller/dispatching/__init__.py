"""Pure rules for executing dispatches: payloads, targets, and who owns which battery."""
