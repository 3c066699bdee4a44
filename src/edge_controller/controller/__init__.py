"""The controller's shell.

The actor graph, the dispatch source and the power pipeline (managing, distributing):
thin actors that move messages and call the pure modules.
"""
