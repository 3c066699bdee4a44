"""The `edge-controller` command line: one entry point, one subcommand per job.

Exit codes: 0 success, 1 runtime failure, 2 bad input (flags, files) — with a message
on stderr that names the flag or file, the key, what was expected and what was found.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, NoReturn, cast

from typing_extensions import override

from edge_controller import __version__
from edge_controller.common import logging as logs
from edge_controller.daemon.early_signals import EarlySighup
from edge_controller.servers.common.shell import print_error, serve_until_signal
from edge_controller.servers.dispatch.command import add_dispatch_server_parser
from edge_controller.servers.market.command import add_market_server_parser
from edge_controller.servers.weather.command import add_weather_server_parser
from edge_controller.tools.dispatch_command import add_dispatch_parser, run_dispatch_command
from edge_controller.tools.scenario.command import add_scenario_parser


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


def _directory(flag: str) -> Callable[[str], Path]:
    def parse(text: str) -> Path:
        if not Path(text).is_dir():
            raise argparse.ArgumentTypeError(f"{flag}: expected a directory, got {text!r}")
        return Path(text)

    return parse


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr, exit 2.

    argparse prints the whole usage first, and repeats the flag when our type checks
    name it already (`argument --speed: --speed: expected ...`); this says
    `edge-controller sim: --speed: expected a number > 0, got '-3' (see ... --help)`.
    Subcommand parsers are of this class too (argparse makes them like their parent).
    """

    @override
    def error(self, message: str) -> NoReturn:
        """Print `PROG: FLAG: problem (see PROG --help)` and exit 2."""
        message = re.sub(r"^argument ([^:]+): \1: ", r"\1: ", message)
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser (kept separate so tests can inspect it)."""
    parser = _Parser(
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
    # The subcommand parsers are `_Parser`s; the modules that add them need no more
    # than an ArgumentParser (the cast only widens the type argument).
    commands = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", required=True, metavar="COMMAND"),
    )

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
        "--command-log",
        type=Path,
        default=None,
        help="also append accepted and refused commands (JSONL)",
    )
    sim.add_argument(
        "--faults-file",
        type=Path,
        default=None,
        help="TOML [[faults]] in force, re-read on change (missing file: none)",
    )
    from edge_controller.servers.common.serving import add_tls_arguments

    add_tls_arguments(sim)  # --tls-cert FILE --tls-key FILE, as for dispatch-server

    demo = commands.add_parser(
        "demo",
        help="run the simulated site under a built-in power schedule and summarise",
        description="Run the simulator, a local dispatch service and the controller under "
        "a built-in schedule (discharge, dry run, charge); a live table on a terminal, "
        "plain lines otherwise, then a summary. Ctrl-C stops it cleanly (exit 130).",
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
    add_weather_server_parser(commands)
    add_market_server_parser(commands)
    add_scenario_parser(commands)
    from edge_controller.daemon.console.command import add_user_parser

    add_user_parser(commands)

    run = commands.add_parser(
        "run",
        help="run the controller (dispatches → batteries) until SIGINT/SIGTERM",
        description="Connect to the Microgrid API and the Dispatch API named in the "
        "config, build the actor graph and run it. Edits of the config (and its drop-in "
        "directory) apply live; SIGHUP forces a re-read. On SIGINT/SIGTERM every battery "
        "is released (0 W) before exit 0; exit 1 when start-up fails or an actor keeps "
        "crashing, 2 for a bad config.",
    )
    check = commands.add_parser(
        "check-config",
        help="validate a controller config (and its drop-ins); exit 0 good, 2 bad",
        description="Read the config like `run` does and list every problem with its "
        "file and key path. Nothing is connected. Exit 0: good; 2: a problem (bad input, "
        "as for every command).",
    )
    run.add_argument("--config", type=Path, required=True, help="controller config (TOML)")
    check.add_argument(
        "config",
        type=Path,
        nargs="?",
        help="controller config (TOML); not with --reference or --reference-out",
    )
    reference = check.add_mutually_exclusive_group()
    reference.add_argument(
        "--reference",
        action="store_true",
        help="print the reference of every config key (Markdown) instead; checks nothing",
    )
    reference.add_argument(
        "--reference-out",
        type=Path,
        metavar="FILE",
        help="write that reference to FILE instead (e.g. docs/config-reference.md); an "
        "existing FILE only when it is an earlier reference",
    )
    for command in (run, check):
        command.add_argument(
            "--drop-in-dir",
            type=_directory("--drop-in-dir"),
            default=None,
            help="drop-in directory, merged in name order (default: CONFIG.d beside it)",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    args = build_parser().parse_args(argv)
    early_sighup = EarlySighup.install() if args.command == "run" else None
    default_level = "warning" if args.command == "demo" else "info"
    try:
        logs.configure(args.log_level or default_level, args.log_format)
    except ValueError as error:
        print(f"edge-controller: {error}", file=sys.stderr)
        return 2
    if args.command == "sim":
        return _run_sim(args)
    if args.command == "demo":
        return _run_demo(args)
    if args.command == "dispatch-server":
        return _run_dispatch_server(args)
    if args.command == "dispatch":
        return run_dispatch_command(args)
    if args.command == "scenario":
        from edge_controller.tools.scenario.command import run_scenario_command

        return run_scenario_command(args)
    if args.command == "market-server":
        from edge_controller.servers.market.command import run_market_server

        return run_market_server(args)
    if args.command == "weather-server":
        from edge_controller.servers.weather.command import run_weather_server

        return run_weather_server(args)
    if args.command == "run":
        from edge_controller.daemon.run import run_daemon

        return _run_async(
            run_daemon(
                args.config,
                drop_ins=args.drop_in_dir,
                cli_log_level=args.log_level,
                early_sighup=early_sighup,
            )
        )
    if args.command == "check-config":
        return _run_check_config(args)
    if args.command == "user":
        from edge_controller.daemon.console.command import run_user_command

        return run_user_command(args)
    raise AssertionError(f"unhandled command {args.command}")  # pragma: no cover


class _FlagError(ValueError):
    """A flag's file that cannot be used; the message names the flag and the file."""


def _check_appendable(flag: str, path: Path) -> None:
    """Open `path` for appending (creating it) now, not with a traceback later.

    Raises:
        _FlagError: it cannot be opened; names `flag`, the file and the reason.
    """
    try:
        path.open("a", encoding="utf-8").close()
    except OSError as error:
        raise _FlagError(
            f"{flag}: cannot append to {str(path)!r}: {error.strerror or error}"
        ) from None


def _run_sim(args: argparse.Namespace) -> int:
    from edge_controller.servers.common.serving import ListenAddressError, ServerTls, TlsFileError
    from edge_controller.servers.sim.server import SimulatorServer
    from edge_controller.servers.sim.site import SiteFileError, load_site

    try:
        site = load_site(args.site)
        if args.command_log is not None:
            _check_appendable("--command-log", args.command_log)
        server = SimulatorServer(
            site,
            args.listen,
            speed=args.speed,
            command_log_path=args.command_log,
            tls=ServerTls.from_flags(args.tls_cert, args.tls_key),
            faults_file=args.faults_file,
        )
    except (SiteFileError, ListenAddressError, TlsFileError, _FlagError, ValueError) as error:
        # ValueError also covers unreadable bundled weather data (measured weather) and
        # a bad faults file (FaultsFileError).
        print_error("sim", error)
        return 2
    return serve_until_signal("sim", server, (ListenAddressError,), lambda: [server.start_line()])


def _run_demo(args: argparse.Namespace) -> int:
    from edge_controller.servers.sim.site import SiteFileError, load_site
    from edge_controller.tools.demo import run_demo

    if args.site is not None:
        # Read it here too, as `sim` does: a bad file is bad input (2), said in one
        # line, before anything starts.
        try:
            load_site(args.site)
        except SiteFileError as error:
            print_error("demo", error)
            return 2
    return _run_async(run_demo(site_path=args.site, duration_s=args.duration, speed=args.speed))


def _create_private(path: Path) -> None:
    """Create `path` empty with mode 0600 if it does not exist; leave it alone if it does.

    The dispatch database holds every dispatch of the site. SQLite creates a missing
    file with the process's umask (0644 outside systemd: readable by every user of the
    machine), and its journal and WAL files with the database's own mode; created
    here first, all of them are 0600. (Under the unit, UMask=0077 did this already.)
    An existing file keeps its mode, and a path that cannot be created is left for
    the storage to report.
    """
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return
    os.close(descriptor)


def _run_dispatch_server(args: argparse.Namespace) -> int:
    from edge_controller.servers.common.serving import ListenAddressError, StartupError
    from edge_controller.servers.dispatch.command import build_server

    try:
        server = build_server(args)
    except (StartupError, ListenAddressError) as error:
        print_error("dispatch-server", error)
        return 2
    _create_private(args.db)  # before the server opens it
    return serve_until_signal("dispatch-server", server, (StartupError, ListenAddressError))


def _run_check_config(args: argparse.Namespace) -> int:
    """Check a config, or print (`--reference`) or write (`--reference-out`) the reference.

    The two jobs take different inputs: a config given with a reference flag is bad
    input (exit 2), never silently ignored — `check-config --reference site.toml` once
    meant "write the reference over site.toml".
    """
    flag = (
        "--reference"
        if args.reference
        else "--reference-out"
        if args.reference_out is not None
        else None
    )
    if flag is None:
        if args.config is None:
            print(
                "edge-controller check-config: expected a config file "
                "(or --reference, --reference-out FILE)",
                file=sys.stderr,
            )
            return 2
        return _check_config(args.config, args.drop_in_dir)
    if args.config is not None or args.drop_in_dir is not None:
        given = (
            f"a config file ({str(args.config)!r})" if args.config is not None else "--drop-in-dir"
        )
        print(
            f"edge-controller check-config: {flag}: not with {given}: the reference "
            "lists every key and checks no config (to write it to a file: "
            "--reference-out FILE)",
            file=sys.stderr,
        )
        return 2
    from edge_controller.config.reference import print_reference, write_reference

    return print_reference() if args.reference else write_reference(args.reference_out)


def _check_config(path: Path, drop_ins: Path | None) -> int:
    from edge_controller.config.files import load, sources
    from edge_controller.config.schema import ConfigError

    try:
        config = load(path, drop_ins=drop_ins)
    except ConfigError as error:
        print(f"{len(error.lines)} problem{'s' if len(error.lines) != 1 else ''}:")
        for line in error.lines:
            print(f"  {line}")
        return 2
    files = ", ".join(str(p) for p in sources(path, drop_ins))
    print(f"ok: {files}")
    print(
        f"  microgrid {config.microgrid.url}; dispatch {config.dispatch.url} "
        f"(microgrid {config.dispatch.microgrid_id}); mode {config.controls.mode}; "
        f"use cases {[u.name for u in config.use_cases]}"
    )
    return 0


def _run_async(job: Coroutine[Any, Any, int]) -> int:
    try:
        return asyncio.run(job)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
