"""Headless Chromium for the tests that look at a page as a person would (selenium).

One place for how the browser starts (Debian's ``chromium`` and ``chromium-driver``; CI
must have them, elsewhere the test is skipped) and for waiting: pages that fetch or
navigate after a click are read only once what the test expects is there, never on the
first try (a fast first read raced the page's navigation once in CI).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

TIMEOUT = 60.0  # pages of a loaded CI machine; the dashboard tests had 60


def chromium(profile: Path, *, width: int = 1280, height: int = 1100) -> Any:
    """A headless Chromium driver with its own profile folder; the caller quits it."""
    webdriver = pytest.importorskip("selenium.webdriver")
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser tests: chromium or chromedriver missing")
        pytest.skip("chromium or chromedriver not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(driver_path))
    driver.set_page_load_timeout(60)
    return driver


def wait(driver: Any, condition: Any, timeout: float = TIMEOUT) -> Any:
    """``condition(driver)``'s first truthy value, retried until ``timeout`` seconds; an
    element missing or gone stale (the page navigated under it) is retried too."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(driver, timeout, ignored_exceptions=ignored).until(condition)


def element(driver: Any, element_id: str, timeout: float = TIMEOUT) -> Any:
    """The element with this id once the page shows it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions

    visible = expected_conditions.visibility_of_element_located((By.ID, element_id))
    return wait(driver, visible, timeout)


def text_becomes(driver: Any, element_id: str, expected: str, timeout: float = TIMEOUT) -> None:
    """Wait until the element's text is ``expected`` (after a post the page updates)."""
    from selenium.webdriver.common.by import By

    wait(driver, lambda d: d.find_element(By.ID, element_id).text == expected, timeout)
