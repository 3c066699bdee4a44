"""Pure power arithmetic: bounds, and (later) the distribution algorithm.

Nothing here does I/O or imports `grpc`/`asyncio`; the actors and servers call it.
"""
