"""The `market-server` subcommand: its flags, and running the server they describe.

`cli.py` wires it in with `add_market_server_parser(commands)` and, for the
`market-server` command, `return run_market_server(args)`. Light to import: the server
and gRPC are imported only when the subcommand runs.

    edge-controller market-server [--listen 127.0.0.1:0] [--market FILE]
                                  (--keys-file FILE | --no-auth)
                                  [--tls-cert FILE --tls-key FILE]

Exit codes as for every command: 0 after SIGINT/SIGTERM, 2 for bad input (a flag, the
market file, the keys file, a TLS file, a busy port) with a message naming it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

COMMAND = "market-server"


def add_market_server_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Add `market-server` to the command line's subcommands."""
    parser = commands.add_parser(
        COMMAND,
        help="run a local electricity market (a Frequenz Electricity Trading API server)",
        description="Serve frequenz.api.electricity_trading.v1 over a simulated local market: "
        "consumers, wind prosumers with batteries and a coal plant, 15-minute delivery "
        "periods cleared at one price at gate closure, your orders included. The first "
        "stdout line is `listening address=HOST:PORT`.",
    )
    parser.add_argument(
        "--listen", default="127.0.0.1:0", help="HOST:PORT; port 0 picks a free port"
    )
    parser.add_argument(
        "--market",
        type=Path,
        default=None,
        metavar="FILE",
        help="market file (TOML, see config/market-default.toml); default: the built-in "
        "market (gridpool 1, any delivery area, 15-minute periods)",
    )
    auth = parser.add_mutually_exclusive_group()
    auth.add_argument(
        "--keys-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="API keys, one per line (blank lines and # comments ignored); clients send one as "
        "gRPC metadata `key`",
    )
    auth.add_argument(
        "--no-auth", action="store_true", help="accept every client without a key (lab use only)"
    )
    from edge_controller.dispatch_service.command import add_tls_arguments

    add_tls_arguments(parser)  # --tls-cert FILE --tls-key FILE, as for the other servers


def run_market_server(args: argparse.Namespace) -> int:
    """Run the market server the parsed flags describe until SIGINT/SIGTERM.

    Prints `listening address=HOST:PORT` first on stdout once bound; returns the exit
    code (0 done, 2 bad input).
    """
    from edge_controller.dispatch_service.auth import load_keys
    from edge_controller.dispatch_service.errors import StartupError
    from edge_controller.market.file import MarketFileError, load_market
    from edge_controller.market.server import MarketServer
    from edge_controller.server_shell import serve_until_signal
    from edge_controller.serving import ListenAddressError, ServerTls, TlsFileError

    try:
        if args.keys_file is None and not args.no_auth:
            raise StartupError(
                "API keys are required: pass --keys-file FILE (one key per line), "
                "or --no-auth to accept every client (lab use only)"
            )
        keys = load_keys(args.keys_file) if args.keys_file is not None else None
        spec = load_market(args.market) if args.market is not None else None
        tls = ServerTls.from_flags(args.tls_cert, args.tls_key)
        server = MarketServer(spec, args.listen, keys=keys, tls=tls)
    except (StartupError, MarketFileError, ListenAddressError, TlsFileError) as error:
        print(f"edge-controller {COMMAND}: {error}", file=sys.stderr)
        return 2

    return serve_until_signal(COMMAND, server, (ListenAddressError,))


__all__ = ["COMMAND", "add_market_server_parser", "run_market_server"]
