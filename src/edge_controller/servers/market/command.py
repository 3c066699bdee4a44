"""The `market-server` subcommand: its flags, and running the server they describe.

`cli.py` wires it in with `add_market_server_parser(commands)` and, for the
`market-server` command, `return run_market_server(args)`. Light to import: the server
and gRPC are imported only when the subcommand runs.

    edge-controller market-server [--listen 127.0.0.1:0] [--market FILE]
                                  (--keys-file FILE | --no-auth)
                                  [--tls-cert FILE --tls-key FILE]
                                  [--http-listen HOST:PORT --users-file FILE
                                   [--members-db FILE]]

`--http-listen` adds the REST API and dashboard (`market.web`); it is off by default:
the market server is mostly started by tests, benchmarks and scenarios with port 0,
and a fixed default port would make every second one fail or log a bind error (the
console's `[http] listen` had that problem). Users come from `--users-file` (roles
viewer < prosumer < manager: `edge-controller user add NAME --market --role manager`);
`--members-db` keeps the members the API adds and changes (SQLite) across restarts.

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
    from edge_controller.servers.common.serving import add_tls_arguments

    add_tls_arguments(parser)  # --tls-cert FILE --tls-key FILE, as for the other servers
    parser.add_argument(
        "--http-listen",
        default=None,
        metavar="HOST:PORT",
        help="serve the REST API under /api/ and the dashboard at / here (e.g. "
        "127.0.0.1:8081; port 0 picks one); default: off. TLS as the gRPC server's",
    )
    parser.add_argument(
        "--users-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="the dashboard's users (edge-controller user add NAME --market --role "
        "viewer|prosumer|manager --users-file FILE); required with --http-listen",
    )
    parser.add_argument(
        "--members-db",
        type=Path,
        default=None,
        metavar="FILE",
        help="SQLite file keeping the members the API adds and changes across restarts "
        "(created 0600); default: changes last until the server stops",
    )


def run_market_server(args: argparse.Namespace) -> int:
    """Run the market server the parsed flags describe until SIGINT/SIGTERM.

    Prints `listening address=HOST:PORT` first on stdout once bound; returns the exit
    code (0 done, 2 bad input).
    """
    from edge_controller.servers.common.api_keys import load_keys
    from edge_controller.servers.common.http_shell import ssl_context
    from edge_controller.servers.common.serving import (
        ListenAddressError,
        ServerTls,
        StartupError,
        TlsFileError,
        parse_listen,
    )
    from edge_controller.servers.common.shell import serve_until_signal
    from edge_controller.servers.market.file import MarketFileError, load_market
    from edge_controller.servers.market.member_store import MemberStoreError
    from edge_controller.servers.market.server import HttpSettings, MarketServer

    try:
        if args.keys_file is None and not args.no_auth:
            raise StartupError(
                "API keys are required: pass --keys-file FILE (one key per line), "
                "or --no-auth to accept every client (lab use only)"
            )
        keys = load_keys(args.keys_file) if args.keys_file is not None else None
        spec = load_market(args.market) if args.market is not None else None
        tls = ServerTls.from_flags(args.tls_cert, args.tls_key)
        http = None
        if args.http_listen is not None:
            if args.users_file is None:
                raise StartupError(
                    "--users-file: required with --http-listen (create it with "
                    "edge-controller user add NAME --market --role manager --users-file FILE)"
                )
            try:
                parse_listen(args.http_listen)
            except ListenAddressError as error:
                raise ListenAddressError(
                    str(error).replace("--listen:", "--http-listen:", 1)
                ) from None
            http = HttpSettings(
                args.http_listen,
                args.users_file,
                args.members_db,
                ssl_context(args.tls_cert, args.tls_key) if tls is not None else None,
            )
        elif args.users_file is not None or args.members_db is not None:
            raise StartupError("--users-file and --members-db need --http-listen HOST:PORT")
        server = MarketServer(spec, args.listen, keys=keys, tls=tls, http=http)
    except (StartupError, MarketFileError, ListenAddressError, TlsFileError) as error:
        print(f"edge-controller {COMMAND}: {error}", file=sys.stderr)
        return 2

    def http_line() -> list[str]:
        return [f"http url={server.http.url}"] if server.http is not None else []

    return serve_until_signal(COMMAND, server, (ListenAddressError, MemberStoreError), http_line)


__all__ = ["COMMAND", "add_market_server_parser", "run_market_server"]
