"""`edge-controller run`.

Signals, systemd, the config watcher, metrics, health and the operator's console.
"""
