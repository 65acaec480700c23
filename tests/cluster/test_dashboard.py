"""The web dashboard in headless Chromium against a real nspawn cluster.

`unitctl serve` runs on the host against the cluster's etcd; Debian's chromium
is driven by Selenium. What the issue's Done-when asks: the unit list updates
within a second of `unitctl start`; start, stop and scale from the page change
the cluster (systemd's ActiveState inside the machines); a read token sees no
action buttons and a forged action with it is refused with 403. The
screenshots go to docs/images/ (docs/dashboard.md shows them).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.dashboard_browser import (
    Server,
    browser,
    cell,
    screenshot,
    serving,
    sign_in,
    until,
)
from tests.cluster.helpers import active_state, service, unitctl, wait, where_active, write_unit
from unitctl_testing.cluster import Cluster

START_DEADLINE = 1.0  # the issue: "the unit list updates within a second of `unitctl start`"


@pytest.fixture(scope="module")
def server(cluster: Cluster) -> Iterator[Server]:
    with serving(cluster) as s:
        yield s


@pytest.fixture
def page() -> Iterator[Any]:
    driver = browser()
    try:
        yield driver
    finally:
        driver.quit()


def _by() -> Any:
    from selenium.webdriver.common.by import By
    return By


def test_unit_list_updates_within_a_second_of_unitctl_start(
        cluster: Cluster, server: Server, page: Any, tmp_path: Path) -> None:
    sign_in(page, server, "operate")
    path = write_unit(tmp_path, "dash-live.service", service())
    unitctl(cluster, "start", "--no-block", path)
    returned = time.monotonic()
    until(page, lambda d: cell(d, "dash-live.service", "desired") == "launched",
          timeout=START_DEADLINE, what="the new unit's row within a second")
    assert time.monotonic() - returned <= START_DEADLINE
    wait(lambda: len(where_active(cluster, "dash-live.service")) == 1, what="systemd runs it")
    until(page, lambda d: cell(d, "dash-live.service", "current") == "launched"
          and cell(d, "dash-live.service", "active").startswith("active"),
          what="the reported state")
    screenshot(page, "units")
    unitctl(cluster, "destroy", "dash-live.service")
    until(page, lambda d: cell(d, "dash-live.service", "desired") == "", what="row removed")


def _click(page: Any, action: str, unit: str) -> None:
    """Click the visible ``action`` button of ``unit`` (the list's, or the unit page's)."""
    sel = f'button[data-action="{action}"][data-unit="{unit}"]'

    def clicked(d: Any) -> bool:
        # found and clicked in one step: a live update may redraw the button between
        # two calls (a stale element is retried by ``until``)
        shown = [b for b in d.find_elements(_by().CSS_SELECTOR, sel) if b.is_displayed()]
        if not shown:
            return False
        shown[0].click()
        return True
    until(page, clicked, what=f"a visible {action} button clicked")


def _active_anywhere(c: Cluster, unit: str) -> set[str]:
    return {m for m in c.names if active_state(c, m, unit) in ("active", "activating")}


def test_start_stop_and_scale_from_the_page(cluster: Cluster, server: Server, page: Any,
                                            tmp_path: Path) -> None:
    unitctl(cluster, "submit", write_unit(tmp_path, "dash-web.service", service()))
    sign_in(page, server, "admin")
    _click(page, "start", "dash-web.service")
    wait(lambda: len(where_active(cluster, "dash-web.service")) == 1,
         what="systemd runs the unit started from the page")
    until(page, lambda d: cell(d, "dash-web.service", "current") == "launched",
          what="launched on the page")
    _unit_page(page, "dash-web.service")
    _click(page, "stop", "dash-web.service")
    wait(lambda: not _active_anywhere(cluster, "dash-web.service"),
         what="systemd stopped the unit stopped from the page")
    unitctl(cluster, "submit", write_unit(tmp_path, "dash-t@.service", service()))
    page.get(server.url + "/dashboard/#/")
    _scale(page, "dash-t@.service", 2)
    wait(lambda: all(where_active(cluster, f"dash-t@{i}.service") for i in (1, 2)),
         what="two instances running")
    until(page, lambda d: cell(d, "dash-t@2.service", "current") == "launched")
    screenshot(page, "scaled")
    _phone(page)
    _scale(page, "dash-t@.service", 1)
    wait(lambda: not _active_anywhere(cluster, "dash-t@2.service"), what="instance 2 stopped")
    assert where_active(cluster, "dash-t@1.service")
    unitctl(cluster, "destroy", "dash-web.service", "dash-t@1.service", "dash-t@2.service",
            "dash-t@.service")


def _unit_page(page: Any, unit: str) -> None:
    def opened(d: Any) -> bool:
        # found and clicked in one step, retried on a stale link (a live update redraws
        # the list; seen in CI)
        d.find_element(_by().LINK_TEXT, unit).click()
        return True
    until(page, opened, what=f"the link to {unit} clicked")
    until(page, lambda d: d.find_element(_by().ID, "unit").is_displayed())
    until(page, lambda d: "ExecStart" in d.find_element(_by().ID, "unit-body").text,
          what="the unit's body")
    until(page, lambda d: d.find_element(_by().ID, "unit-journal").text.strip() != "",
          what="the journal tail")
    until(page, lambda d: d.find_elements(_by().CSS_SELECTOR, "#unit-states tbody tr"),
          what="states per machine")
    screenshot(page, "unit")


def _scale(page: Any, template: str, count: int) -> None:
    """Type ``count`` into the template's box and click Scale, as a user would (the box
    keeps what is typed while events re-render the page)."""
    def typed(d: Any) -> bool:
        box = d.find_element(_by().CSS_SELECTOR, f'input[data-scale-input="{template}"]')
        box.clear()
        box.send_keys(str(count))
        return bool(d.find_element(_by().CSS_SELECTOR, f'input[data-scale-input="{template}"]'
                                   ).get_attribute("value") == str(count))
    until(page, typed, what="the instance count typed")
    _click(page, "scale", template)
    until(page, lambda d: "started" in d.find_element(_by().ID, "message").text,
          what="scale answered")


def _phone(page: Any) -> None:
    page.set_window_size(390, 844)
    page.refresh()
    until(page, lambda d: cell(d, "dash-t@1.service", "desired") == "launched")
    screenshot(page, "phone")
    page.set_window_size(1280, 900)


def test_read_token_sees_no_actions_and_a_forged_action_is_refused(
        cluster: Cluster, server: Server, page: Any, tmp_path: Path) -> None:
    unitctl(cluster, "submit", write_unit(tmp_path, "dash-ro.service", service()))
    unitctl(cluster, "submit", write_unit(tmp_path, "dash-ro-t@.service", service()))
    sign_in(page, server, "read")
    until(page, lambda d: cell(d, "dash-ro.service", "desired") == "inactive")
    assert page.find_elements(_by().CSS_SELECTOR, "button[data-action]") == []
    assert page.find_elements(_by().CSS_SELECTOR, "input[data-scale-input]") == []
    screenshot(page, "read-only")
    script = """const done = arguments[arguments.length - 1];
        fetch('/unitctl/v1/start', {method: 'POST', headers: {
          'Authorization': 'Bearer ' + sessionStorage.getItem('unitctl-token'),
          'Content-Type': 'application/json'},
          body: JSON.stringify({units: ['dash-ro.service'], noBlock: true})})
        .then(r => done(r.status)).catch(e => done(String(e)));"""
    assert page.execute_async_script(script) == 403
    req = urllib.request.Request(server.url + "/unitctl/v1/scale", method="POST",
                                 data=json.dumps({"template": "dash-ro-t@.service",
                                                  "instances": 1}).encode(),
                                 headers={"Authorization": f"Bearer {server.tokens['read']}",
                                          "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=5)
    assert refused.value.code == 403
    rows = [line.split() for line in unitctl(
        cluster, "list-unit-files", "--no-legend", "--fields", "unit,dstate").stdout.splitlines()]
    assert ["dash-ro.service", "inactive"] in rows  # the forged start changed nothing
    assert not any(row[0].startswith("dash-ro-t@1") for row in rows)
    unitctl(cluster, "destroy", "dash-ro.service", "dash-ro-t@.service")
