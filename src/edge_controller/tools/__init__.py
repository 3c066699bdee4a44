"""The operator's and developer's tools: the command line, the demo, the scenario runner."""
