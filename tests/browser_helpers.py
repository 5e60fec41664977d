"""Headless Chromium for the page tests (Debian's chromium + chromium-driver, driven by selenium)."""
from __future__ import annotations

import os
import shutil

import pytest

# no background networking: this machine has no network, and Chromium retries refused connections
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium():
    """(browser binary, chromedriver) or a skip (a failure under CI)."""
    binary = next((p for p in ("/usr/bin/chromium", "/usr/lib/chromium/chromium", shutil.which("chromium") or "")
                   if p and os.path.exists(p)), None)
    driver = shutil.which("chromedriver") or ("/usr/lib/chromium/chromedriver"
                                              if os.path.exists("/usr/lib/chromium/chromedriver") else None)
    try:
        import selenium  # noqa: F401
    except ImportError:
        binary = None
    if binary is None or driver is None:
        why = "needs Debian's chromium + chromium-driver and selenium (scripts/setup.sh installs them)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return binary, driver


def headless_chromium(profile_dir):
    """A selenium Chrome driver on headless Chromium with a fresh profile; the caller quits it."""
    binary, driver_path = chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile_dir}", "--window-size=1400,1000"]:
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver_path), options=options)
    browser.set_page_load_timeout(60)
    return browser
