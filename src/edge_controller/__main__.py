"""`python -m edge_controller`: the same entry point as the `edge-controller` command."""

from edge_controller.tools.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
