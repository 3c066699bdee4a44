"""Use cases as plug-ins.

Each folder holds its config, its pure decision and its actor; `registry.py` lists them.
"""
