"""The OpenWeatherMap-style source, against an HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from frequenz.channels import BroadcastChannel

from edge_controller.common.clock import ManualClock
from edge_controller.use_cases.market_bid.weather_actor import WeatherActor
from edge_controller.weather.messages import WeatherForecast
from edge_controller.weather.openweathermap import (
    ApiKeyFileError,
    OpenWeatherMapError,
    OpenWeatherMapSource,
    cloud_factor,
    parse_forecast,
    read_api_key,
)
from tests.weather.conftest import BERLIN

KEY = "owm-test-key-123"
START = int(datetime(2026, 6, 21, 0, tzinfo=UTC).timestamp())


def entry(hour: int, *, temp: float = 18.0, clouds: float = 0.0) -> dict[str, Any]:
    return {
        "dt": START + hour * 3600,
        "main": {"temp": temp, "humidity": 60},
        "wind": {"speed": 4.0, "deg": 270, "gust": 7.0},
        "clouds": {"all": clouds},
        "dt_txt": "ignored",
    }


DOCUMENT = {
    "cod": "200",
    "list": [entry(h, clouds=100.0 if h >= 24 else 0.0) for h in range(0, 48, 3)],
}


class FakeOpenWeatherMap:
    """A forecast endpoint on a free loopback port; records the queries it got."""

    def __init__(self) -> None:
        self.queries: list[dict[str, list[str]]] = []
        self.status = 200
        self.body: bytes = json.dumps(DOCUMENT).encode()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                fake.queries.append(query)
                if url.path != "/data/2.5/forecast":
                    self.send_error(404)
                    return
                if query.get("appid") != [KEY]:
                    self.send_error(401, "Invalid API key")
                    return
                if fake.status != 200:
                    self.send_error(fake.status)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(fake.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def owm() -> Iterator[FakeOpenWeatherMap]:
    server = FakeOpenWeatherMap()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "owm.key"
    path.write_text(f"# OpenWeatherMap key\n\n{KEY}\n")
    return path


def source(owm: FakeOpenWeatherMap, key_file: Path, **kwargs: Any) -> OpenWeatherMapSource:
    return OpenWeatherMapSource(
        BERLIN,
        key_file,
        base_url=owm.url,
        clock=ManualClock(datetime(2026, 6, 21, tzinfo=UTC)),
        **kwargs,
    )


def test_fetch_reads_the_forecast(owm: FakeOpenWeatherMap, key_file: Path) -> None:
    forecast = source(owm, key_file).fetch()
    (query,) = owm.queries
    assert query["appid"] == [KEY]
    assert query["units"] == ["metric"]
    assert query["lat"] == ["52.5200"]
    assert query["lon"] == ["13.4000"]
    assert forecast.issued_at == datetime(2026, 6, 21, tzinfo=UTC)
    assert forecast.source == f"openweathermap {owm.url}"
    assert len(forecast.steps) == 16
    step = forecast.steps[4]  # 12:00 UTC, a clear sky near solar noon
    assert step.valid_at == datetime(2026, 6, 21, 12, tzinfo=UTC)
    assert step.temperature_c == 18.0
    assert step.wind_speed_10m_ms == 4.0
    assert step.wind_direction_deg == 270.0
    assert step.wind_speed_100m_ms == pytest.approx(4.0 * 10 ** (1 / 7))
    assert 600 < step.ghi_wm2 < 950
    assert forecast.steps[0].ghi_wm2 < 50  # 00:00-03:00: night, then dawn
    overcast = forecast.steps[12]  # the same hour the next day, 100 % clouds
    assert overcast.ghi_wm2 == pytest.approx(step.ghi_wm2 * 0.25, rel=0.05)


def test_a_refused_key_names_the_key_file_but_never_the_key(
    owm: FakeOpenWeatherMap, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong.key"
    wrong.write_text("not-the-key\n")
    with pytest.raises(
        OpenWeatherMapError, match=r"HTTP 401: the key in .*wrong\.key.* was refused"
    ) as caught:
        source(owm, wrong).fetch()
    assert "not-the-key" not in str(caught.value)


def test_server_errors_and_bad_answers_are_named(owm: FakeOpenWeatherMap, key_file: Path) -> None:
    owm.status = 503
    with pytest.raises(OpenWeatherMapError, match="HTTP 503"):
        source(owm, key_file).fetch()
    owm.status = 200
    owm.body = b"<html>"
    with pytest.raises(OpenWeatherMapError, match="the answer is not JSON"):
        source(owm, key_file).fetch()
    owm.body = json.dumps({"list": [{"dt": START, "main": {}}]}).encode()
    with pytest.raises(OpenWeatherMapError, match=r"list\[0\].main.temp: missing"):
        source(owm, key_file).fetch()


def test_an_unreachable_server_is_named(key_file: Path) -> None:
    unreachable = OpenWeatherMapSource(BERLIN, key_file, base_url="http://127.0.0.1:9", timeout_s=2)
    with pytest.raises(OpenWeatherMapError, match=r"cannot reach http://127.0.0.1:9"):
        unreachable.fetch()


def test_parse_checks_every_field() -> None:
    issued = datetime(2026, 6, 21, tzinfo=UTC)
    with pytest.raises(OpenWeatherMapError, match="list: expected a non-empty list"):
        parse_forecast({"list": []}, BERLIN, issued, "test")
    bad = entry(0)
    bad["wind"]["speed"] = "fast"
    with pytest.raises(
        OpenWeatherMapError, match=r"list\[0\].wind.speed: expected a number, got 'fast'"
    ):
        parse_forecast({"list": [bad]}, BERLIN, issued, "test")
    shuffled = parse_forecast({"list": [entry(6), entry(3)]}, BERLIN, issued, "test")
    assert [s.valid_at.hour for s in shuffled.steps] == [3, 6]


def test_cloud_factor() -> None:
    assert cloud_factor(0.0) == 1.0
    assert cloud_factor(1.0) == pytest.approx(0.25)
    assert cloud_factor(0.5) == pytest.approx(1 - 0.75 * 0.5**3.4)


def test_key_file_rules(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    with pytest.raises(ApiKeyFileError, match="cannot read"):
        read_api_key(path)
    path.write_text("# only a comment\n")
    with pytest.raises(ApiKeyFileError, match="expected exactly one key, found 0"):
        read_api_key(path)
    path.write_text("a\nb\n")
    with pytest.raises(ApiKeyFileError, match="expected exactly one key, found 2"):
        read_api_key(path)
    path.write_text("  k1  \n")
    assert read_api_key(path) == "k1"
    with pytest.raises(ValueError, match="base_url: expected an http"):
        OpenWeatherMapSource(BERLIN, path, base_url="ftp://example")


async def test_the_actor_publishes_from_openweathermap_and_rides_out_failures(
    owm: FakeOpenWeatherMap, key_file: Path
) -> None:
    owm.status = 503  # down at first: the source retries, the actor keeps running
    clock = ManualClock(datetime(2026, 6, 21, tzinfo=UTC))
    polling = OpenWeatherMapSource(
        BERLIN,
        key_file,
        base_url=owm.url,
        poll_interval=timedelta(seconds=0.2),
        retry_interval=timedelta(seconds=0.05),
        clock=clock,
    )
    sender, receiver = BroadcastChannel[WeatherForecast](name="weather")
    actor = WeatherActor(polling, sender)
    actor.start()
    try:
        await asyncio.sleep(0.15)
        owm.status = 200
        async with asyncio.timeout(5):
            first = await receiver.receive()
            clock.advance(timedelta(minutes=30))
            second = await receiver.receive()
    finally:
        await actor.stop()
    assert len(owm.queries) >= 3
    assert second.issued_at - first.issued_at == timedelta(minutes=30)
    assert actor.connections == 1
