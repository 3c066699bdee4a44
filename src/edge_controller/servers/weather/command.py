"""The `weather-server` subcommand: its flags, the server they describe, and running it.

    edge-controller weather-server [--listen 127.0.0.1:0] [--resolution 15m]
                                   [--horizon 48h] [--issue-interval 1h] [--seed 1]
                                   [--tls-cert FILE --tls-key FILE]

Serves `frequenz.api.weather.v1.WeatherForecastService` from the measured TMY3 data
that `pvlib` ships (see `weather.data` and `weather.forecast`); no key. The first
stdout line is `listening address=HOST:PORT`; SIGINT/SIGTERM stop it (exit 0); a bad
flag or an address that cannot be bound exits 2 with a message naming the flag.

Kept light to import (`cli.py` only wires it in): gRPC, numpy and pvlib are imported
when the subcommand runs.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import timedelta
from typing import TYPE_CHECKING

from edge_controller.servers.common.shell import serve_until_signal

if TYPE_CHECKING:
    from edge_controller.servers.weather.server import WeatherServer

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_PROGRAM = "edge-controller weather-server"


def parse_duration(text: str) -> timedelta:
    """Return a duration from "15m", "48h", "1h30m", "2d", "90s" (whole units, > 0).

    Raises:
        argparse.ArgumentTypeError: naming what was expected and what was given.
    """
    value = text.strip()
    match = _DURATION.fullmatch(value)
    if not value or match is None or not any(match.groups()):
        raise argparse.ArgumentTypeError(
            f"expected a duration with units, like 15m, 1h, 48h or 2d, got {text!r}"
        )
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    duration = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if duration <= timedelta(0):
        raise argparse.ArgumentTypeError(f"expected a duration > 0, got {text!r}")
    return duration


def _seed(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return int(text)


def add_weather_server_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Add `weather-server` to the command line's subcommands."""
    parser = commands.add_parser(
        "weather-server",
        help="run a local Frequenz Weather API server on measured weather data (no key)",
        description="Serve frequenz.api.weather.v1.WeatherForecastService (live and historical "
        "forecasts) from the NREL TMY3 files shipped by pvlib: the nearest station, shifted to "
        "the location's solar time, interpolated to --resolution, with a seeded forecast error "
        "that grows with lead time. The first stdout line is `listening address=HOST:PORT`.",
    )
    parser.add_argument(
        "--listen",
        default="127.0.0.1:0",
        metavar="HOST:PORT",
        help="HOST:PORT; port 0 picks a free port",
    )
    parser.add_argument(
        "--resolution",
        type=parse_duration,
        metavar="DURATION",
        default=timedelta(minutes=15),
        help="time between forecast steps (default 15m; the API has no resolution field)",
    )
    parser.add_argument(
        "--horizon",
        type=parse_duration,
        metavar="DURATION",
        default=timedelta(hours=48),
        help="how far ahead each forecast reaches (default 48h, at most 10d)",
    )
    parser.add_argument(
        "--issue-interval",
        type=parse_duration,
        metavar="DURATION",
        default=timedelta(hours=1),
        help="a new forecast is issued this often (default 1h)",
    )
    parser.add_argument(
        "--seed",
        type=_seed,
        metavar="N",
        default=1,
        help="seed of the forecast error (default 1): same seed, same forecasts",
    )
    from edge_controller.servers.common.serving import add_tls_arguments

    add_tls_arguments(parser)  # --tls-cert FILE --tls-key FILE, as for the other servers


class WeatherServerStartupError(Exception):
    """The flags do not describe a server that can start; the message names the flag."""


def build_weather_server(args: argparse.Namespace) -> WeatherServer:
    """Return the (not yet started) server the parsed flags describe.

    Raises:
        WeatherServerStartupError: a bad `--listen`, settings out of range, or unusable
            TLS files.
    """
    from edge_controller.servers.common.serving import ListenAddressError, ServerTls, TlsFileError
    from edge_controller.servers.weather.server import WeatherServer
    from edge_controller.servers.weather.service import ServiceSettings

    try:
        settings = ServiceSettings(
            resolution=args.resolution,
            horizon=args.horizon,
            issue_interval=args.issue_interval,
            seed=args.seed,
        )
    except ValueError as error:
        # The settings name their field first ("issue_interval: expected ..."): name the flag.
        message = str(error)
        field = message.split(":", 1)[0].split(" ", 1)[0]
        if field in ("resolution", "horizon", "issue_interval", "seed"):
            message = "--" + field.replace("_", "-") + message[len(field) :]
        raise WeatherServerStartupError(message) from None
    try:
        tls = ServerTls.from_flags(args.tls_cert, args.tls_key)
        return WeatherServer(args.listen, settings=settings, tls=tls)
    except (ListenAddressError, TlsFileError) as error:
        raise WeatherServerStartupError(str(error)) from None


def run_weather_server(args: argparse.Namespace) -> int:
    """Run `weather-server` until SIGINT/SIGTERM; return the exit code (0, 1 or 2)."""
    try:
        server = build_weather_server(args)
    except WeatherServerStartupError as error:
        print(f"{_PROGRAM}: {error}", file=sys.stderr)
        return 2
    from edge_controller.servers.common.serving import ListenAddressError

    return serve_until_signal("weather-server", server, (ListenAddressError,))


__all__ = [
    "WeatherServerStartupError",
    "add_weather_server_parser",
    "build_weather_server",
    "parse_duration",
    "run_weather_server",
]
