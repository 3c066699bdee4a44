"""The `edge-controller` command line: one entry point, one subcommand per job.

Exit codes: 0 success, 1 runtime failure, 2 bad input (flags, files) — with a message
on stderr that names the flag or file, the key, what was expected and what was found.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Protocol

from edge_controller import __version__
from edge_controller import logging as logs
from edge_controller.dispatch_service.command import add_dispatch_server_parser
from edge_controller.dispatching.command import add_dispatch_parser, run_dispatch_command


def _positive_float(flag: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{flag}: expected a number > 0, got {text!r}"
            ) from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{flag}: expected a number > 0, got {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser (kept separate so tests can inspect it)."""
    parser = argparse.ArgumentParser(
        prog="edge-controller",
        description="Microgrid site controller: executes dispatches on batteries.",
    )
    parser.add_argument("--version", action="version", version=f"edge-controller {__version__}")
    parser.add_argument(
        "--log-level", default=None, help="debug, info, warning or error (default: info)"
    )
    parser.add_argument(
        "--log-format",
        choices=["auto", "json", "console"],
        default="auto",
        help="auto: JSON under systemd or when stderr is not a terminal",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sim = commands.add_parser(
        "sim",
        help="run the microgrid simulator (a Microgrid API gRPC server)",
        description="Serve the Frequenz Microgrid API (v1alpha18 and v1) over a simulated "
        "site. The first stdout line is `listening address=HOST:PORT`.",
    )
    sim.add_argument("--site", type=Path, required=True, help="site file (TOML)")
    sim.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT; port 0 picks a free port")
    sim.add_argument(
        "--speed",
        type=_positive_float("--speed"),
        default=1.0,
        help="physics runs this many times faster than the wall clock (API times do not)",
    )
    sim.add_argument(
        "--command-log", type=Path, default=None, help="also append accepted commands (JSONL)"
    )

    demo = commands.add_parser(
        "demo",
        help="run the simulated site under a built-in power schedule and summarise",
    )
    demo.add_argument(
        "--duration", type=_positive_float("--duration"), default=60.0, help="seconds (60)"
    )
    demo.add_argument(
        "--site", type=Path, default=None, help="site file (default: the embedded example)"
    )
    demo.add_argument(
        "--speed",
        type=_positive_float("--speed"),
        default=60.0,
        help="physics speed-up so SoC visibly moves (default 60: a minute is an hour)",
    )
    add_dispatch_server_parser(commands)
    add_dispatch_parser(commands)

    run = commands.add_parser(
        "run",
        help="run the controller (dispatches → batteries) until SIGINT/SIGTERM",
        description="Connect to the Microgrid API and the Dispatch API named in the "
        "config, build the actor graph and run it. On SIGINT/SIGTERM every battery is "
        "released (0 W) before exit.",
    )
    run.add_argument("--config", type=Path, required=True, help="controller config (TOML)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    args = build_parser().parse_args(argv)
    default_level = "warning" if args.command == "demo" else "info"
    try:
        logs.configure(args.log_level or default_level, args.log_format)
    except ValueError as error:
        print(f"edge-controller: {error}", file=sys.stderr)
        return 2
    if args.command == "sim":
        return _run_sim(args)
    if args.command == "demo":
        from edge_controller.demo import run_demo

        return _run_async(run_demo(site_path=args.site, duration_s=args.duration, speed=args.speed))
    if args.command == "dispatch-server":
        return _run_dispatch_server(args)
    if args.command == "dispatch":
        return run_dispatch_command(args)
    if args.command == "run":
        return _run_controller(args)
    raise AssertionError(f"unhandled command {args.command}")  # pragma: no cover


class _Server(Protocol):
    @property
    def address(self) -> str: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def _serve(command: str, server: _Server, startup_errors: tuple[type[Exception], ...]) -> int:
    """Start a server, print its address first, run until SIGINT/SIGTERM, stop it."""

    async def serve() -> int:
        try:
            await server.start()
        except startup_errors as error:
            print(f"edge-controller {command}: {error}", file=sys.stderr)
            return 2
        print(f"listening address={server.address}", flush=True)
        await _wait_for_signal()
        await server.stop()
        return 0

    return _run_async(serve())


def _run_sim(args: argparse.Namespace) -> int:
    from edge_controller.serving import ListenAddressError
    from edge_controller.sim.server import SimulatorServer
    from edge_controller.sim.site import SiteFileError, load_site

    try:
        site = load_site(args.site)
        server = SimulatorServer(
            site, args.listen, speed=args.speed, command_log_path=args.command_log
        )
    except (SiteFileError, ListenAddressError) as error:
        print(f"edge-controller sim: {error}", file=sys.stderr)
        return 2
    return _serve("sim", server, (ListenAddressError,))


def _run_dispatch_server(args: argparse.Namespace) -> int:
    from edge_controller.dispatch_service.command import build_server
    from edge_controller.dispatch_service.errors import StartupError
    from edge_controller.serving import ListenAddressError

    try:
        server = build_server(args)
    except (StartupError, ListenAddressError) as error:
        print(f"edge-controller dispatch-server: {error}", file=sys.stderr)
        return 2
    return _serve("dispatch-server", server, (StartupError, ListenAddressError))


def _run_controller(args: argparse.Namespace) -> int:
    from frequenz.client.microgrid import ApiClientError

    from edge_controller.actors.dispatch_broadcasting import DispatchServiceUnreachableError
    from edge_controller.app import Controller
    from edge_controller.config import ConfigError, load_config
    from edge_controller.microgrid.graph import ComponentGraphError

    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"edge-controller run: {error}", file=sys.stderr)
        return 2

    async def serve() -> int:
        controller = Controller(config)
        try:
            await controller.start()
        except (DispatchServiceUnreachableError, ComponentGraphError, ApiClientError) as error:
            print(f"edge-controller run: {error}", file=sys.stderr)
            return 1
        try:
            await _wait_for_signal()
        finally:
            await controller.stop()
        return 0

    return _run_async(serve())


async def _wait_for_signal() -> None:
    """Return on SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)


def _run_async(job: Coroutine[Any, Any, int]) -> int:
    try:
        return asyncio.run(job)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
