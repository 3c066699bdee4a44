"""`edge-controller user`: the console's users file from the command line.

    edge-controller user add NAME --role ROLE (--users-file FILE | --config FILE)
                             [--password-stdin] [--replace] [--market]
    edge-controller user token NAME ...     # a new API token, printed once
    edge-controller user list ...
    edge-controller user remove NAME ...

The password is asked twice on the terminal (not echoed), or read as the first line
of stdin with `--password-stdin` (scripts). `--config FILE` takes the file from the
configuration's `http.users_file`. A running daemon sees the change within a second.
`--market`: the file is the market dashboard's (`market-server --users-file`), whose
roles are viewer < prosumer < manager.
Exit codes: 0 done; 2 bad input (a short password, an unknown role, an existing user
without `--replace`, an unreadable file), with a message naming what.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from edge_controller.servers.common.users import MARKET_ROLES, ROLES, Users, UsersFileError

_PROGRAM = "edge-controller user"


def add_user_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `user` and its actions to the command line."""
    user = commands.add_parser(
        "user",
        help="manage the web console's users (roles: " + " < ".join(ROLES) + ")",
        description="Add, list and remove the web console's users, make API tokens.",
    )
    actions = user.add_subparsers(dest="user_action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add a user (the password is asked)")
    add.add_argument("name")
    add.add_argument(
        "--role",
        required=True,
        choices=ROLES + tuple(r for r in MARKET_ROLES if r not in ROLES),
        help="console: " + " < ".join(ROLES) + "; with --market: " + " < ".join(MARKET_ROLES),
    )
    add.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    add.add_argument("--replace", action="store_true", help="set an existing user's role")
    token = actions.add_parser("token", help="make an API token for a user (printed once)")
    token.add_argument("name")
    remove = actions.add_parser("remove", help="remove a user and their tokens")
    remove.add_argument("name")
    listing = actions.add_parser("list", help="list users, roles and token ids")
    for parser in (add, token, remove, listing):
        parser.add_argument(
            "--market",
            action="store_true",
            help="the market dashboard's users file (roles " + " < ".join(MARKET_ROLES) + ")",
        )
        where = parser.add_mutually_exclusive_group(required=True)
        where.add_argument("--users-file", type=Path, help="the users file (JSON)")
        where.add_argument("--config", type=Path, help="take http.users_file from this config")


def _users_file(args: argparse.Namespace) -> Path:
    if args.users_file is not None:
        return Path(args.users_file)
    from edge_controller.config.files import load

    return load(args.config).http.users_file


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("password: the two entries differ")
    return first


def run_user_command(args: argparse.Namespace) -> int:
    """Run `edge-controller user ACTION`; return the exit code."""
    try:
        path = _users_file(args)
        users = Users.load(path, MARKET_ROLES if args.market else ROLES)
        if args.user_action == "add":
            user = users.add(
                args.name, args.role, _password(args.password_stdin), replace=args.replace
            )
            users.save()
            print(f"added name={user.name} role={user.role} file={path}")
        elif args.user_action == "token":
            token = users.new_token(args.name)
            users.save()
            print(token)
        elif args.user_action == "remove":
            users.remove(args.name)
            users.save()
            print(f"removed name={args.name}")
        else:
            for user in users.all():
                print(f"name={user.name} role={user.role} tokens={','.join(user.tokens) or '-'}")
    except KeyError as error:
        print(f"{_PROGRAM}: name: no user {error.args[0]!r}", file=sys.stderr)
        return 2
    except (ValueError, UsersFileError) as error:  # ConfigError is a ValueError
        print(f"{_PROGRAM}: {error}", file=sys.stderr)
        return 2
    return 0
