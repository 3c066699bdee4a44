"""The controller's configuration.

Files and drop-ins, the schema, live versus restart changes, watching.
"""
