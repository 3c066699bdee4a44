"""The `dispatch-server` subcommand's flags, and the server they describe.

Kept apart from `cli.py` (which only wires it in) and light to import: the server
and gRPC are imported only when the subcommand runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from edge_controller.servers.common.serving import StartupError, add_tls_arguments

if TYPE_CHECKING:
    from edge_controller.servers.dispatch.server import DispatchServer


def _microgrid_id(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= 2**63 - 1:
        raise argparse.ArgumentTypeError(f"--microgrid-id: expected an id > 0, got {text!r}")
    return int(text)


def add_dispatch_server_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Add `dispatch-server` to the command line's subcommands."""
    parser = commands.add_parser(
        "dispatch-server",
        help="run a local Frequenz Dispatch API server (SQLite storage, API keys)",
        description="Serve frequenz.api.dispatch.v1.MicrogridDispatchService for lab use, with "
        "dispatches stored durably in one SQLite file. The first stdout line is "
        "`listening address=HOST:PORT`.",
    )
    parser.add_argument(
        "--listen", default="127.0.0.1:0", help="HOST:PORT; port 0 picks a free port"
    )
    parser.add_argument("--db", type=Path, required=True, help="SQLite file (created if missing)")
    auth = parser.add_mutually_exclusive_group()
    auth.add_argument(
        "--keys-file",
        type=Path,
        default=None,
        help="API keys, one per line (blank lines and # comments ignored); clients send one as "
        "gRPC metadata `key`",
    )
    auth.add_argument(
        "--no-auth", action="store_true", help="accept every client without a key (lab use only)"
    )
    parser.add_argument(
        "--microgrid-id",
        type=_microgrid_id,
        nargs="+",
        action="extend",
        default=None,
        metavar="N",
        help="serve only these microgrids (others: NOT_FOUND); default: any",
    )
    add_tls_arguments(parser)


def build_server(args: argparse.Namespace) -> DispatchServer:
    """Return the (not yet started) server the parsed flags describe, alone in its process.

    Raises:
        StartupError: no `--keys-file` and no `--no-auth`, an unusable keys file or
            TLS file, or a bad `--listen`; the message names the flag.
    """
    from edge_controller.servers.common.api_keys import load_keys
    from edge_controller.servers.common.serving import ServerTls, TlsFileError
    from edge_controller.servers.dispatch.server import DispatchServer

    if args.keys_file is None and not args.no_auth:
        raise StartupError(
            "API keys are required: pass --keys-file FILE (one key per line), "
            "or --no-auth to accept every client (lab use only)"
        )
    keys = load_keys(args.keys_file) if args.keys_file is not None else None
    microgrids = frozenset(args.microgrid_id) if args.microgrid_id else None
    try:
        tls = ServerTls.from_flags(args.tls_cert, args.tls_key)
    except TlsFileError as error:
        raise StartupError(str(error)) from None
    return DispatchServer(
        args.db, args.listen, keys=keys, microgrid_ids=microgrids, tls=tls, owns_process=True
    )


__all__ = ["add_dispatch_server_parser", "build_server"]
