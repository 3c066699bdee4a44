"""The peers the controller talks to, as real servers.

The simulator, the dispatch service, the market and the weather service.
"""
