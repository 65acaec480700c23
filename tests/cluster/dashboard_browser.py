"""The dashboard's test rig: `unitctl serve` on the host against a cluster's etcd, tokens
of each role, and headless Debian chromium driven by Selenium (chromium-driver)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cluster.helpers import REPO, unitctl
from tests.real import require, require_tool
from unitctl_testing.cluster import Cluster

CHROMIUM = "/usr/bin/chromium"
SHOTS = REPO / "docs" / "images"


@dataclass
class Server:
    url: str
    tokens: dict[str, str]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(c: Cluster) -> Iterator[Server]:
    """`unitctl serve` (a subprocess) on a free loopback port, and a token per role."""
    tokens = {role: unitctl(c, "token", "create", "--role", role, "--name", f"dash-{role}"
                            ).stdout.strip() for role in ("read", "operate", "admin")}
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "unitctl", "--endpoint", c.endpoint,
                             "serve", "--listen", f"127.0.0.1:{port}"], cwd=str(REPO), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(url + "/openapi.json", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError("unitctl serve did not come up") from None
                time.sleep(0.1)
        yield Server(url, tokens)
    finally:
        proc.terminate()
        proc.wait(10)


def browser(width: int = 1280, height: int = 900) -> Any:
    """Headless Debian chromium through chromedriver (both from Debian's packages)."""
    require_tool("chromium", "apt-get install chromium (scripts/install-deps.sh)")
    driver_path = require_tool("chromedriver", "apt-get install chromium-driver")
    require("selenium", importlib.util.find_spec("selenium") is not None,
            "pip install -e '.[browser]' (scripts/install-deps.sh)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--hide-scrollbars"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)


def until(driver: Any, cond: Callable[[Any], Any], timeout: float = 20.0,
          what: str = "condition") -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.02,
                         ignored_exceptions=(StaleElementReferenceException,)).until(
        cond, message=f"{what} not met within {timeout}s")


def sign_in(driver: Any, server: Server, role: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(server.url + "/dashboard/")
    box = until(driver, lambda d: d.find_element(By.ID, "token"), what="login form")
    box.send_keys(server.tokens[role])
    driver.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
    until(driver, lambda d: d.find_element(By.ID, "overview").is_displayed(), what="overview")
    until(driver, lambda d: d.find_element(By.ID, "live").text == "live", what="live stream")


def cell(driver: Any, unit: str, column: str) -> str:
    """The text of one cell of ``unit``'s row ("" while there is no such row)."""
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, f'#units tr[data-unit="{unit}"] td.c-{column}')
    return str(found[0].text) if found else ""


def screenshot(driver: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"dashboard-{name}.png"
    driver.save_screenshot(str(path))
    return path
