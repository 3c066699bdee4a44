"""The market dashboard in headless Chromium against a real market server on a manual
clock: a manager lowers the coal plant's ratio and the next period clears at another
price; first paint and bytes; a prosumer sees its houses' source and no manager form.

The screenshot `docs/img/market.png` (README) is taken here, so it stays current.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_console_page import MEASURE, text, wait
from tests.console.helpers import PASSWORD
from tests.servers.market.web_helpers import START, MarketThread

pytestmark = pytest.mark.timeout(240)

SCREENSHOT = Path(__file__).parents[2] / "docs" / "img" / "market.png"


@pytest.fixture
def running(tmp_path: Path) -> Iterator[MarketThread]:
    thread = MarketThread(tmp_path / "market")
    with thread:
        yield thread


def log_in(driver: Any, url: str, name: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url)
    wait(driver, lambda d: d.find_element(By.ID, "login").is_displayed(), "the login form")
    driver.find_element(By.ID, "login-name").send_keys(name)
    driver.find_element(By.ID, "login-password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "#login button").click()
    wait(driver, lambda d: d.find_element(By.ID, "app").is_displayed(), "logged in")


def test_a_manager_lowers_the_coal_ratio_and_the_next_period_clears_at_another_price(
    browser: Any, running: MarketThread
) -> None:
    from selenium.webdriver.common.by import By

    site = running.site
    assert site is not None
    running.run(lambda: site.advance(12 * 60 + 20))  # a day so far: 06:15 .. 18:15 cleared
    period_now = START + timedelta(hours=12, minutes=15)
    price_now = running.run(lambda: site.server.exchange.records[period_now].price)
    log_in(browser, site.url, "manager")
    wait(browser, lambda d: text(d, "#price") == f"{price_now:.2f}", "the price now")
    wait(browser, lambda d: text(d, "#next-price") not in ("", "–"), "the next price")
    expected_before = text(browser, "#next-price")

    ratio = browser.find_element(By.ID, "manager-ratio")
    ratio.clear()
    ratio.send_keys("0.3")
    browser.find_element(By.ID, "manager-submit").click()
    wait(browser, lambda d: text(d, "#manager-message").startswith("applied: ratio 0.3"), "applied")
    assert running.run(lambda: site.server.exchange.spec.manager.ratio) == 0.3
    wait(browser, lambda d: text(d, "#next-price") != expected_before, "the expected price moves")

    cleared = running.run(lambda: site.advance(15))  # the next period's gate closes
    assert [r.start for r in cleared] == [period_now + timedelta(minutes=15)]
    new_price = cleared[0].price
    assert f"{new_price:.2f}" != expected_before
    assert new_price == 500  # 30 % of the coal plant cannot cover the evening: scarcity
    wait(browser, lambda d: text(d, "#price") == f"{new_price:.2f}", "the new price on the page")
    wait(
        browser,
        lambda d: int(d.find_element(By.ID, "chart").get_attribute("data-points") or 0) >= 49,
        "the day on the chart",
    )
    browser.execute_script("window.scrollTo(0, 0)")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))


def test_a_prosumer_sees_where_its_houses_consume_from_and_no_manager_controls(
    browser: Any, running: MarketThread
) -> None:
    from selenium.webdriver.common.by import By

    site = running.site
    assert site is not None
    running.run(lambda: site.advance(20))
    log_in(browser, site.url, "prosumer")
    row = "#prosumer-wind_homes"
    wait(browser, lambda d: text(d, f"{row} .source") == "turbines", "the source")
    assert not browser.find_element(By.ID, "manager-form").is_displayed()
    browser.find_element(By.CSS_SELECTOR, f"{row} input[type=checkbox]").click()  # turbines off
    browser.find_element(By.CSS_SELECTOR, f"{row} button").click()
    wait(browser, lambda d: "applied" in text(d, "#prosumer-message"), "applied")
    running.run(lambda: site.advance(15))
    wait(browser, lambda d: text(d, f"{row} .source") == "battery", "from the battery now")


def test_first_paint_and_bytes_downloaded_and_phone_width(
    browser: Any, running: MarketThread, capsys: pytest.CaptureFixture[str]
) -> None:
    from selenium.webdriver.common.by import By

    site = running.site
    assert site is not None
    running.run(lambda: site.advance(24 * 60))
    browser.get(site.url)  # the first visit: a fresh profile, nothing cached
    wait(browser, lambda d: d.find_element(By.ID, "login").is_displayed(), "the login form")
    first_visit = browser.execute_script(MEASURE)
    log_in(browser, site.url, "viewer")
    wait(browser, lambda d: text(d, "#price") not in ("", "–"), "the market shown")
    wait(
        browser,
        lambda d: d.find_element(By.ID, "chart").get_attribute("data-points") == "96",
        "a day",
    )
    logged_in = browser.execute_script(MEASURE)  # the same page: + the API's answers
    with capsys.disabled():
        print(f"\nmarket page, first visit: {json.dumps(first_visit)}")
        print(f"market page, logged in: {json.dumps(logged_in)}")
    assert first_visit["first_paint_ms"] is not None
    assert first_visit["first_paint_ms"] < 1000
    assert logged_in["bytes"] < 500_000
    assert not browser.find_element(By.ID, "manager-form").is_displayed()
    browser.set_window_size(390, 844)
    wait(browser, lambda d: d.execute_script("return window.innerWidth") <= 400, "phone width")
    wide = browser.execute_script("return document.documentElement.scrollWidth")
    assert wide <= browser.execute_script("return window.innerWidth")
