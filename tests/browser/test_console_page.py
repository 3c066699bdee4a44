"""The console's page in headless Chromium against a real daemon, simulator and
dispatch service: log in, read SoC, run a dispatch from the form, switch the mode.

The screenshot `docs/img/console.png` (README) is taken here, so it stays current.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_controller.servers.sim.site import SiteSpec
from tests.console.helpers import PASSWORD, ConsoleThread
from tests.patience import PATIENCE_S

pytestmark = pytest.mark.timeout(240)

SCREENSHOT = Path(__file__).parents[2] / "docs" / "img" / "console.png"


@pytest.fixture
def running(example_site: SiteSpec, tmp_path: Path) -> Iterator[ConsoleThread]:
    thread = ConsoleThread(example_site, tmp_path / "site")
    with thread:
        yield thread


def wait(driver: Any, condition: Callable[[Any], Any], what: str) -> Any:
    from selenium.webdriver.support.wait import WebDriverWait

    return WebDriverWait(driver, PATIENCE_S, poll_frequency=0.1).until(condition, what)


def log_in(driver: Any, url: str, name: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url)
    wait(driver, lambda d: d.find_element(By.ID, "login").is_displayed(), "the login form")
    driver.find_element(By.ID, "login-name").send_keys(name)
    driver.find_element(By.ID, "login-password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "#login button").click()
    wait(driver, lambda d: d.find_element(By.ID, "app").is_displayed(), "logged in")


def text(driver: Any, selector: str) -> str:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, selector)
    return str(found[0].text) if found else ""


def test_log_in_and_see_each_batterys_soc_as_the_simulator_has_it(
    browser: Any, running: ConsoleThread
) -> None:
    site = running.site
    assert site is not None
    log_in(browser, site.url, "guest")
    assert text(browser, "#who") == "guest (guest)"
    wait(browser, lambda d: text(d, "#battery-41 .soc").endswith("%"), "SoC shown")
    for battery in (11, 21, 31, 41):
        shown = float(text(browser, f"#battery-{battery} .soc").removesuffix(" %"))
        actual = running.call(_soc(site, battery))
        assert shown == pytest.approx(actual, abs=0.5)
    wait(browser, lambda d: text(d, "#live") == "live", "the live stream")


async def _soc(site: Any, battery: int) -> float:
    return float(site.sim.model.soc_pct(battery))


def test_a_dispatch_from_the_form_runs_and_the_battery_power_changes_at_the_simulator(
    browser: Any, running: ConsoleThread
) -> None:
    from selenium.webdriver.common.by import By

    site = running.site
    assert site is not None
    log_in(browser, site.url, "owner")
    wait(browser, lambda d: d.find_elements(By.ID, "dispatch-b21"), "battery ticks")
    power = browser.find_element(By.ID, "dispatch-power")
    power.clear()
    power.send_keys("-30")
    browser.find_element(By.ID, "dispatch-b21").click()
    browser.find_element(By.ID, "dispatch-submit").click()
    wait(browser, lambda d: text(d, "#dispatch-message").startswith("created #"), "created")
    dispatch_id = text(browser, "#dispatch-message").removeprefix("created #")

    async def power_20() -> float:
        return float(site.power(20))

    deadline = time.monotonic() + PATIENCE_S
    while running.call(power_20()) != pytest.approx(-30_000, abs=100):
        assert time.monotonic() < deadline, "the simulator's inverter 20 never reached -30 kW"
        time.sleep(0.1)
    wait(browser, lambda d: f"#{dispatch_id} " in text(d, "#running-dispatch"), "shown running")
    wait(browser, lambda d: text(d, f"#dispatch-{dispatch_id} .state") == "running", "listed")
    wait(
        browser,
        lambda d: (
            d.find_element(By.ID, "battery-21").get_attribute("data-power") not in ("", "0.0", "0")
        ),
        "the battery's power on the page",
    )
    wait(
        browser,
        lambda d: int(d.find_element(By.ID, "chart").get_attribute("data-points") or 0) >= 4,
        "a few points on the chart",
    )
    browser.execute_script("window.scrollTo(0, 0)")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))


def test_observe_mode_as_installer_and_refused_as_guest(
    browser: Any, running: ConsoleThread
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select

    site = running.site
    assert site is not None
    log_in(browser, site.url, "installer")
    Select(browser.find_element(By.ID, "controls-mode")).select_by_value("observe")
    browser.find_element(By.ID, "controls-submit").click()
    wait(browser, lambda d: text(d, "#controls-message") == "applied: mode observe", "applied")
    assert site.daemon.controller.config.controls.mode == "observe"
    wait(browser, lambda d: text(d, "#mode-badge") == "mode observe", "the mode on the page")

    browser.find_element(By.ID, "logout").click()
    log_in(browser, site.url, "guest")
    Select(browser.find_element(By.ID, "controls-mode")).select_by_value("control")
    browser.find_element(By.ID, "controls-submit").click()
    wait(browser, lambda d: text(d, "#controls-message").startswith("refused"), "refused")
    assert text(browser, "#controls-message") == (
        "refused: needs the role installer or above; you are guest"
    )
    assert site.daemon.controller.config.controls.mode == "observe"


def test_first_paint_and_bytes_downloaded_and_phone_width(
    browser: Any, running: ConsoleThread, capsys: pytest.CaptureFixture[str]
) -> None:
    from selenium.webdriver.common.by import By

    site = running.site
    assert site is not None
    browser.get(site.url)  # the first visit: a fresh profile, nothing cached
    wait(browser, lambda d: d.find_element(By.ID, "login").is_displayed(), "the login form")
    first_visit = browser.execute_script(MEASURE)
    log_in(browser, site.url, "guest")
    wait(browser, lambda d: text(d, "#battery-41 .soc").endswith("%"), "the site shown")
    wait(browser, lambda d: text(d, "#events li"), "the events")
    logged_in = browser.execute_script(MEASURE)  # the same page: + the API's answers
    with capsys.disabled():
        print(f"\nconsole page, first visit: {json.dumps(first_visit)}")
        print(f"console page, logged in: {json.dumps(logged_in)}")
    assert first_visit["first_paint_ms"] is not None
    assert first_visit["first_paint_ms"] < 1000
    assert logged_in["bytes"] < 500_000
    browser.set_window_size(390, 844)
    wait(browser, lambda d: d.execute_script("return window.innerWidth") <= 400, "phone width")
    wide = browser.execute_script("return document.documentElement.scrollWidth")
    assert wide <= browser.execute_script("return window.innerWidth")
    assert browser.find_element(By.ID, "battery-11").is_displayed()


MEASURE = """
const paint = performance.getEntriesByType('paint');
const nav = performance.getEntriesByType('navigation')[0];
const resources = performance.getEntriesByType('resource');
const first = paint.find(p => p.name === 'first-contentful-paint') || paint[0];
return {first_paint_ms: first ? first.startTime : null,
        dom_content_loaded_ms: nav.domContentLoadedEventEnd,
        bytes: nav.transferSize + resources.reduce((n, r) => n + r.transferSize, 0),
        decoded_bytes: nav.decodedBodySize + resources.reduce((n, r) => n + r.decodedBodySize, 0),
        requests: 1 + resources.length};
"""
