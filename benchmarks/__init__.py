"""Benchmarks: scripts that print their figures (see each module's docstring).

A package so that benchmarks share helpers (`battery_sites`) and the SDK peer
(`sdk_stack`, also run by an end-to-end test) by module name.
"""
