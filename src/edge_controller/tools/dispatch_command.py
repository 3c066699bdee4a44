"""The `dispatch` subcommand: create, read, update, list and delete dispatches.

    edge-controller dispatch [--url URL] [--microgrid-id N] [--key-file FILE] ACTION ...
    edge-controller dispatch create --power "-40 kW" [--batteries 11,21] [--start NOW]
                                    [--duration 15m] [--dry-run] [--type BATTERY_POWER]
                                    [--microgrid-url URL | --site-rating POWER] [--force]
    edge-controller dispatch update ID [--power P] [--batteries IDS] [--start S]
                                    [--duration D] [--active | --inactive]
                                    [--microgrid-url URL | --site-rating POWER] [--force]
    edge-controller dispatch get ID
    edge-controller dispatch list
    edge-controller dispatch delete ID

The connection options may also follow the action. `--url` defaults to
`$EDGE_CONTROLLER_DISPATCH_URL`, then `grpc://127.0.0.1:50052?ssl=false`; the API key
comes from `--key-file` (one key; blank lines and `#` comments ignored), else from
`$EDGE_CONTROLLER_DISPATCH_KEY`. The key is never printed.

**Power check.** `create` and `update` refuse (exit 2, before anything is sent) a
power beyond what the target batteries can do together: the sum of their rated bounds
(each battery's rated DC bounds within its inverter's rated AC bounds), asked from the
Microgrid API at `--microgrid-url` (else `$EDGE_CONTROLLER_MICROGRID_URL`), and/or
within ±`--site-rating` (else `$EDGE_CONTROLLER_SITE_RATING`). The error names the
batteries and what each can do. With neither source the power cannot be checked and
is refused too (exit 2, saying how to give one), so a forgotten unit or sign never
runs a site at full power unnoticed; `--force` sends it unchecked. A Microgrid API
that does not answer (5 s) is exit 1. 0 W is always allowed.

Output (stdout), one line per dispatch, `key=value` fields::

    created id=7 type=BATTERY_POWER start=2026-06-21T14:00:00Z duration=15m ...
    id=7 type=BATTERY_POWER start=... duration=15m target=ids:11,21 active=yes
        state=pending next_start=2026-06-21T14:00:00Z dry_run=no
        payload={"power_w":-40000.0}
    updated id=7 ...
    deleted id=7

`state` is where the dispatch stands now (`pending`, `running`, `ended`, `inactive`;
see `schedule.py`), `next_start` the start of its next occurrence or `none`. The
service forgets deleted dispatches: `get` of one is NOT_FOUND (exit 1).

Exit codes: 0 done; 1 the service refused or failed (its status code and message on
stderr, e.g. "NOT_FOUND: dispatch 9 not found in microgrid 1"); 2 bad input, with a
message naming the flag and what was expected.

Kept light to import (`cli.py` only wires it in): gRPC and the client are imported
when the subcommand runs.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from edge_controller.dispatching.power_check import SiteCapability
    from edge_controller.dispatching.producer import DispatchProducer, DispatchSummary

URL_ENVIRONMENT_VARIABLE = "EDGE_CONTROLLER_DISPATCH_URL"
KEY_ENVIRONMENT_VARIABLE = "EDGE_CONTROLLER_DISPATCH_KEY"
DEFAULT_URL = "grpc://127.0.0.1:50052?ssl=false"
DEFAULT_TYPE = "BATTERY_POWER"
MICROGRID_URL_ENVIRONMENT_VARIABLE = "EDGE_CONTROLLER_MICROGRID_URL"
SITE_RATING_ENVIRONMENT_VARIABLE = "EDGE_CONTROLLER_SITE_RATING"

_UNITS_W = {"W": 1.0, "kW": 1e3, "MW": 1e6, "GW": 1e9}
_POWER = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]+)")
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_PROGRAM = "edge-controller dispatch"


# ---------------------------------------------------------------- flag values


def parse_power(text: str) -> float:
    """Return watts from a power with a unit: "-40 kW", "500 W", "1.2MW".

    A bare number is refused: "-40" could mean W or kW.

    Raises:
        argparse.ArgumentTypeError: naming what was expected and what was given.
    """
    match = _POWER.fullmatch(text.strip())
    if match is None or match.group(2) not in _UNITS_W:
        hint = ""
        if match is not None:
            hint = f" (unit {match.group(2)!r}; use W, kW, MW or GW)"
        elif re.fullmatch(r"\s*[+-]?[\d.]+(?:[eE][+-]?\d+)?\s*", text):
            hint = " (a unit is required)"
        raise argparse.ArgumentTypeError(
            f"expected a power with a unit, like '-40 kW' or '500 W', got {text!r}{hint}"
        )
    value = float(match.group(1)) * _UNITS_W[match.group(2)]
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite power, got {text!r}")
    return value


def parse_site_rating(text: str) -> float:
    """Return watts > 0 from a site rating with a unit: "500 kW", "1.2 MW".

    Raises:
        argparse.ArgumentTypeError: naming what was expected and what was given.
    """
    value = parse_power(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(
            f"expected a rating > 0 with a unit, like '500 kW', got {text!r}"
        )
    return value


def parse_duration(text: str) -> timedelta | None:
    """Return a duration from "15m", "900s", "1h30m" (whole units), or None for "none".

    A bare number is refused: `dispatch-cli` once read "900" as 0:22:39.

    Raises:
        argparse.ArgumentTypeError: naming what was expected and what was given.
    """
    value = text.strip()
    if value.lower() in ("none", "indefinite"):
        return None
    match = _DURATION.fullmatch(value)
    if not value or match is None or not any(match.groups()):
        raise argparse.ArgumentTypeError(
            "expected a duration with units, like 15m, 900s or 1h30m, or 'none' "
            f"(until deleted), got {text!r}"
        )
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    duration = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    if duration <= timedelta(0):
        raise argparse.ArgumentTypeError(
            f"expected a duration > 0, or 'none' (until deleted), got {text!r}"
        )
    return duration


RelativeStart = timedelta
"""A start given as "+30s": resolved against the clock just before sending."""


def parse_start(text: str) -> Literal["NOW"] | datetime | RelativeStart:
    """Return "NOW", an aware datetime (RFC 3339), or a timedelta for "+30s".

    Raises:
        argparse.ArgumentTypeError: naming what was expected and what was given.
    """
    value = text.strip()
    expected = (
        "expected NOW, +DURATION (e.g. +30s, +5m) or an RFC 3339 time with a zone "
        f"(e.g. 2026-06-21T14:00:00Z), got {text!r}"
    )
    if value.upper() == "NOW":
        return "NOW"
    if value.startswith("+"):
        match = _DURATION.fullmatch(value[1:])
        if match is None or not any(match.groups()):
            raise argparse.ArgumentTypeError(expected)
        hours, minutes, seconds = (int(part or 0) for part in match.groups())
        offset = timedelta(hours=hours, minutes=minutes, seconds=seconds)
        if offset <= timedelta(0):
            raise argparse.ArgumentTypeError(f"expected +DURATION > 0, got {text!r}")
        return offset
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(expected) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise argparse.ArgumentTypeError(
            f"expected a time with a zone (Z or +HH:MM), got {text!r} without one"
        )
    return moment


def parse_batteries(text: str) -> tuple[int, ...]:
    """Return battery ids from "11,21" (ids > 0, comma-separated).

    Raises:
        argparse.ArgumentTypeError: naming what was expected and what was given.
    """
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() and int(part) > 0 for part in parts):
        raise argparse.ArgumentTypeError(
            f"expected battery ids > 0 separated by commas, like 11,21, got {text!r} "
            "(leave the flag out to target every battery)"
        )
    return tuple(sorted({int(part) for part in parts}))


def _positive_id(what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = text.strip()
        if not value.isdigit() or not 0 < int(value) <= 2**63 - 1:
            raise argparse.ArgumentTypeError(f"expected {what} > 0, got {text!r}")
        return int(value)

    return parse


def _dispatch_type(text: str) -> str:
    value = text.strip()
    if not value or any(c.isspace() for c in value):
        raise argparse.ArgumentTypeError(
            f"expected a dispatch type name without spaces, like BATTERY_POWER, got {text!r}"
        )
    return value


# ---------------------------------------------------------------- parser


def _connection_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    # On the `dispatch` parser the defaults are None (resolved later); on each action
    # they are SUPPRESS, so an action that does not repeat a flag keeps the value given
    # before it.
    def default(value: object) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--url",
        default=default(None),
        help=f"Dispatch API URL (default: ${URL_ENVIRONMENT_VARIABLE}, else {DEFAULT_URL}; "
        "a plain local server needs ?ssl=false)",
    )
    parser.add_argument(
        "--microgrid-id",
        type=_positive_id("a microgrid id"),
        default=default(None),
        metavar="N",
        help="the microgrid whose dispatches to manage (default: 1)",
    )
    parser.add_argument(
        "--key-file",
        type=Path,
        default=default(None),
        metavar="FILE",
        help=f"file holding the API key (default: ${KEY_ENVIRONMENT_VARIABLE})",
    )


def _check_options(parser: argparse.ArgumentParser) -> None:
    """The power check's sources and its override (create, update)."""
    parser.add_argument(
        "--microgrid-url",
        default=None,
        metavar="URL",
        help="check --power against the rated bounds of the target batteries that this "
        f"Microgrid API reports (default: ${MICROGRID_URL_ENVIRONMENT_VARIABLE})",
    )
    parser.add_argument(
        "--site-rating",
        type=parse_site_rating,
        default=None,
        metavar="POWER",
        help='check --power against ±this power, e.g. "500 kW" '
        f"(default: ${SITE_RATING_ENVIRONMENT_VARIABLE})",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="send the power unchecked (beyond the batteries' bounds, or with no source "
        "to check it against)",
    )


def add_dispatch_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `dispatch` (create, get, update, list, delete) to the command line's subcommands."""
    parser = commands.add_parser(
        "dispatch",
        help="create, read, update, list or delete dispatches on a Dispatch API service",
        description="Manage one microgrid's dispatches on a Frequenz Dispatch API service "
        "(the cloud service or `edge-controller dispatch-server`).",
    )
    _connection_options(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _connection_options(common, suppress=True)
    one_dispatch = argparse.ArgumentParser(add_help=False, parents=[common])
    one_dispatch.add_argument("dispatch_id", type=_positive_id("a dispatch id"), metavar="ID")
    actions = parser.add_subparsers(dest="dispatch_command", required=True, metavar="ACTION")

    create = actions.add_parser(
        "create",
        parents=[common],
        help="create a battery-power dispatch",
        description="Create a dispatch asking batteries to hold a power (+ charges, "
        "- discharges); prints the dispatch as stored (start rounded to the second).",
    )
    create.add_argument(
        "--power",
        type=parse_power,
        required=True,
        help='power with a unit, e.g. "-40 kW" (quote it; or --power=-40kW)',
    )
    create.add_argument(
        "--batteries",
        type=parse_batteries,
        default=None,
        metavar="ID,ID",
        help="battery ids, e.g. 11,21 (default: every battery, the battery category)",
    )
    create.add_argument(
        "--start",
        type=parse_start,
        default="NOW",
        help="NOW (default), +30s / +5m from now, or RFC 3339 with a zone "
        "(2026-06-21T14:00:00Z); the service rounds to the second",
    )
    create.add_argument(
        "--duration",
        type=parse_duration,
        default=timedelta(minutes=15),
        help="15m (default), 900s, 1h30m, or none (until deleted)",
    )
    create.add_argument(
        "--dry-run", action="store_true", help="the controller logs what it would do, only"
    )
    create.add_argument(
        "--type",
        type=_dispatch_type,
        default=DEFAULT_TYPE,
        dest="dispatch_type",
        metavar="TYPE",
        help=f"dispatch type (default: {DEFAULT_TYPE})",
    )
    _check_options(create)

    actions.add_parser(
        "get",
        parents=[one_dispatch],
        help="show one dispatch",
        description="Print one dispatch as one `key=value` line, with its state "
        "(pending, running, ended, inactive) and next start.",
    )

    update = actions.add_parser(
        "update",
        parents=[one_dispatch],
        help="change a dispatch in place (a running one takes the change at once)",
        description="Change the given fields of a dispatch; the others stay. Prints the "
        "dispatch as stored. The type and the dry-run flag cannot be changed (the API).",
    )
    update.add_argument(
        "--power",
        type=parse_power,
        default=None,
        help='new power with a unit, e.g. "-40 kW" (the payload\'s other fields stay)',
    )
    update.add_argument(
        "--batteries",
        type=parse_batteries,
        default=None,
        metavar="ID,ID",
        help="new target battery ids, e.g. 11,21",
    )
    update.add_argument(
        "--start",
        type=parse_start,
        default=None,
        help="new start: NOW, +30s / +5m from now, or RFC 3339 with a zone",
    )
    update.add_argument(
        "--duration",
        type=parse_duration,
        default=argparse.SUPPRESS,
        help="new duration: 15m, 900s, 1h30m, or none (until deleted)",
    )
    switch = update.add_mutually_exclusive_group()
    switch.add_argument(
        "--active",
        dest="active",
        action="store_const",
        const=True,
        default=None,
        help="switch the dispatch on",
    )
    switch.add_argument(
        "--inactive",
        dest="active",
        action="store_const",
        const=False,
        help="switch the dispatch off (a running one stops)",
    )
    _check_options(update)

    actions.add_parser(
        "list",
        parents=[common],
        help="list the microgrid's dispatches, one per line",
        description="Print every dispatch of the microgrid, one `key=value` line each, "
        "in id order.",
    )

    actions.add_parser(
        "delete",
        parents=[one_dispatch],
        help="delete a dispatch (a running one stops at once)",
    )


# ---------------------------------------------------------------- run


def read_key(key_file: Path | None, environ: Mapping[str, str]) -> str:
    """Return the API key from `key_file`, else from the environment.

    The file holds one key; blank lines and lines starting with `#` are ignored.

    Raises:
        ValueError: naming `--key-file` (never the key).
    """
    if key_file is None:
        key = environ.get(KEY_ENVIRONMENT_VARIABLE, "").strip()
        if not key:
            raise ValueError(
                f"--key-file: missing; pass --key-file FILE or set {KEY_ENVIRONMENT_VARIABLE}"
            )
        return key
    try:
        text = key_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ValueError(f"--key-file: cannot read {str(key_file)!r}: {reason}") from None
    keys = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    if len(keys) != 1:
        raise ValueError(
            f"--key-file: {str(key_file)!r} holds {len(keys)} keys; expected exactly one "
            "(blank lines and # comments are ignored)"
        )
    return keys[0]


_FLAGS = {
    "url": "--url",
    "start": "--start",
    "duration": "--duration",
    "power_w": "--power",
    "batteries": "--batteries",
    "dispatch_type": "--type",
    "microgrid_id": "--microgrid-id",
    "dispatch_id": "ID",
}


def _flag_message(error: ValueError) -> str:
    """Rename the producer's argument names ("start: ...") to flags ("--start: ...")."""
    text = str(error)
    name, sep, rest = text.partition(": ")
    if sep and name in _FLAGS:
        return f"{_FLAGS[name]}: {rest}"
    return text


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def duration_text(duration: timedelta | None) -> str:
    """Return "15m", "1h30m", "90s"→"1m30s", or "none" (indefinite)."""
    if duration is None:
        return "none"
    total = int(duration.total_seconds())
    if total == 0:
        return "0s"
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "m"), (seconds, "s")]
    return "".join(f"{value}{unit}" for value, unit in parts if value)


def summary_line(summary: DispatchSummary) -> str:
    """Return one dispatch as one `key=value` line (its state as read)."""
    from edge_controller.dispatching.producer import payload_text

    schedule = summary.schedule
    state = "unknown" if schedule is None else str(schedule.state)
    next_start = (
        "none" if schedule is None or schedule.next_start is None else (_utc(schedule.next_start))
    )
    return (
        f"id={summary.id} type={summary.type} start={_utc(summary.start)} "
        f"duration={duration_text(summary.duration)} target={summary.target} "
        f"active={'yes' if summary.active else 'no'} state={state} next_start={next_start} "
        f"dry_run={'yes' if summary.dry_run else 'no'} payload={payload_text(summary.payload)}"
    )


class PowerCheckError(Exception):
    """The power check refused, or could not run; `exit_code` 2 (input) or 1 (failure)."""

    def __init__(self, message: str, exit_code: int) -> None:
        """Carry the one-line message and the exit code."""
        super().__init__(message)
        self.exit_code = exit_code


def target_batteries(target: str) -> tuple[int, ...] | None:
    """Return the battery ids of a summary's target ("ids:11,21"); None for categories."""
    kind, _, ids = target.partition(":")
    if kind != "ids":
        return None
    return tuple(int(part) for part in ids.split(",") if part)


async def site_capability(
    args: argparse.Namespace, environ: Mapping[str, str]
) -> SiteCapability | None:
    """Return what the flags (else the environment) say the site can do; None: nothing.

    Raises:
        PowerCheckError: a bad `$EDGE_CONTROLLER_SITE_RATING` or Microgrid API URL (2),
            or a Microgrid API that did not tell (1).
    """
    from edge_controller.dispatching.power_check import SiteCapability
    from edge_controller.dispatching.site_bounds import (
        MicrogridUrlError,
        SiteBoundsError,
        fetch_site_capability,
    )

    url = args.microgrid_url or environ.get(MICROGRID_URL_ENVIRONMENT_VARIABLE, "").strip()
    rating_w: float | None = args.site_rating
    rating_flag = "--site-rating"
    if rating_w is None and environ.get(SITE_RATING_ENVIRONMENT_VARIABLE, "").strip():
        rating_flag = f"${SITE_RATING_ENVIRONMENT_VARIABLE}"
        try:
            rating_w = parse_site_rating(environ[SITE_RATING_ENVIRONMENT_VARIABLE])
        except argparse.ArgumentTypeError as error:
            raise PowerCheckError(f"{rating_flag}: {error}", 2) from None
    if not url and rating_w is None:
        return None
    sources: list[str] = []
    inverters = None
    if url:
        try:
            found = await fetch_site_capability(url)
        except MicrogridUrlError as error:
            flag = (
                "--microgrid-url"
                if args.microgrid_url
                else f"${MICROGRID_URL_ENVIRONMENT_VARIABLE}"
            )
            raise PowerCheckError(str(error).replace("--microgrid-url", flag, 1), 2) from None
        except SiteBoundsError as error:
            raise PowerCheckError(
                f"--power: cannot check it: {error} (pass --site-rating POWER to check "
                "against a rating instead, or --force to send it unchecked)",
                1,
            ) from None
        inverters = found.inverters
        sources.append(found.source)
    if rating_w is not None:
        sources.append(f"{rating_flag} {_power_text(rating_w)}")
    return SiteCapability(source=" and ".join(sources), inverters=inverters, rating_w=rating_w)


def _power_text(power_w: float) -> str:
    from edge_controller.dispatching.power_check import power_text

    return power_text(power_w).lstrip("+")


async def check_power(
    args: argparse.Namespace,
    power_w: float,
    batteries: tuple[int, ...] | None,
    environ: Mapping[str, str],
) -> None:
    """Refuse `power_w` on `batteries` (None: every battery) unless it fits or --force.

    Raises:
        PowerCheckError: beyond what the batteries can do, or no source to check it
            against (2); the Microgrid API did not tell (1).
    """
    from edge_controller.dispatching.power_check import power_problem, power_text

    if args.force or power_w == 0:
        return
    capability = await site_capability(args, environ)
    if capability is None:
        raise PowerCheckError(
            f"--power: cannot check {power_text(power_w)} against the site: give "
            f"--microgrid-url URL (or ${MICROGRID_URL_ENVIRONMENT_VARIABLE}) or "
            f"--site-rating POWER (or ${SITE_RATING_ENVIRONMENT_VARIABLE}), or --force "
            "to send it unchecked",
            2,
        )
    problem = power_problem(power_w, capability, batteries)
    if problem is not None:
        # No hint to force a battery the site does not have: that helps no one.
        hint = "; pass --force to send it anyway" if problem.forcible else ""
        raise PowerCheckError(f"--power: {problem.text}{hint}", 2)


def _resolve_start(start: Literal["NOW"] | datetime | RelativeStart) -> Literal["NOW"] | datetime:
    if isinstance(start, timedelta):
        return datetime.now(UTC) + start
    return start


async def _create(
    producer: DispatchProducer, args: argparse.Namespace, environ: Mapping[str, str]
) -> None:
    from edge_controller.dispatching.producer import (
        battery_power_payload,
        battery_target,
        check_schedule,
    )

    payload = battery_power_payload(args.power)
    target = battery_target(args.batteries)
    start = _resolve_start(args.start)
    check_schedule(start, args.duration)  # bad input first, before asking the site
    await check_power(args, args.power, args.batteries, environ)
    created = await producer.create(
        args.dispatch_type, payload, target, start, args.duration, dry_run=args.dry_run
    )
    print(f"created {summary_line(created)}", flush=True)


async def _update(
    producer: DispatchProducer, args: argparse.Namespace, environ: Mapping[str, str]
) -> None:
    from edge_controller.dispatching.payload import PayloadError
    from edge_controller.dispatching.payload import parse_power as parse_payload_power
    from edge_controller.dispatching.producer import battery_power_payload, battery_target

    changes: dict[str, Any] = {}
    if args.start is not None:
        start = _resolve_start(args.start)
        # The service rounds to the nearest second: NOW must not round into the future.
        changes["start"] = datetime.now(UTC).replace(microsecond=0) if start == "NOW" else start
    if "duration" in args:
        changes["duration"] = args.duration
    if args.active is not None:
        changes["active"] = args.active
    if args.batteries is not None:
        changes["target"] = battery_target(args.batteries)
    if args.power is None and not changes:
        raise ValueError(
            "update: nothing to change; give --power, --batteries, --start, --duration, "
            "--active or --inactive"
        )
    if args.power is not None or args.batteries is not None:
        current = await producer.get(args.dispatch_id)
        batteries = (
            args.batteries if args.batteries is not None else target_batteries(current.target)
        )
        power_w = args.power
        if power_w is None:
            # The power it holds, read as the controller reads it ("-40 kW" too); a
            # payload without a readable power commands nothing to check.
            try:
                power_w = parse_payload_power(
                    args.dispatch_id, "power_w", current.payload.get("power_w")
                )
            except PayloadError:
                power_w = 0.0
        else:
            changes["payload"] = {**current.payload, **battery_power_payload(power_w)}
        await check_power(args, power_w, batteries, environ)
    updated = await producer.update(args.dispatch_id, **changes)
    print(f"updated {summary_line(updated)}", flush=True)


async def _list(producer: DispatchProducer) -> None:
    found = await producer.list()
    for summary in found:
        print(summary_line(summary))
    if not found:
        print(f"no dispatches for microgrid {producer.microgrid_id}", file=sys.stderr)
    sys.stdout.flush()


def run_dispatch_command(args: argparse.Namespace) -> int:
    """Run `dispatch create|get|update|list|delete`; return the exit code (0, 1 or 2)."""
    program = f"{_PROGRAM} {args.dispatch_command}"
    url = args.url or os.environ.get(URL_ENVIRONMENT_VARIABLE) or DEFAULT_URL
    microgrid_id = args.microgrid_id or 1
    try:
        key = read_key(args.key_file, os.environ)
    except ValueError as error:
        print(f"{program}: {error}", file=sys.stderr)
        return 2

    async def run() -> int:
        from edge_controller.dispatching.producer import DispatchProducer, DispatchProducerError

        try:
            producer = DispatchProducer(url, microgrid_id, key)
        except ValueError as error:
            print(f"{program}: {_flag_message(error)}", file=sys.stderr)
            return 2
        try:
            if args.dispatch_command == "create":
                await _create(producer, args, os.environ)
            elif args.dispatch_command == "update":
                await _update(producer, args, os.environ)
            elif args.dispatch_command == "get":
                print(summary_line(await producer.get(args.dispatch_id)), flush=True)
            elif args.dispatch_command == "list":
                await _list(producer)
            elif args.dispatch_command == "delete":
                await producer.delete(args.dispatch_id)
                print(f"deleted id={args.dispatch_id}", flush=True)
            else:  # pragma: no cover - argparse allows no other action
                raise AssertionError(f"unhandled action {args.dispatch_command}")
        except PowerCheckError as refused:
            print(f"{program}: {refused}", file=sys.stderr)
            return refused.exit_code
        except ValueError as error:
            print(f"{program}: {_flag_message(error)}", file=sys.stderr)
            return 2
        except DispatchProducerError as error:
            hint = ""
            if error.code == "UNAVAILABLE" and "ssl=false" not in url:
                hint = " (a plain local server needs '?ssl=false' in --url)"
            print(f"{program}: {url}: {error}{hint}", file=sys.stderr)
            return 1
        finally:
            await producer.close()
        return 0

    try:
        return asyncio.run(run())
    except KeyboardInterrupt:
        return 130


__all__ = [
    "DEFAULT_URL",
    "KEY_ENVIRONMENT_VARIABLE",
    "MICROGRID_URL_ENVIRONMENT_VARIABLE",
    "SITE_RATING_ENVIRONMENT_VARIABLE",
    "URL_ENVIRONMENT_VARIABLE",
    "PowerCheckError",
    "add_dispatch_parser",
    "check_power",
    "duration_text",
    "parse_batteries",
    "parse_duration",
    "parse_power",
    "parse_site_rating",
    "parse_start",
    "read_key",
    "run_dispatch_command",
    "site_capability",
    "summary_line",
    "target_batteries",
]
