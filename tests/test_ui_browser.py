"""The status page in a real browser: Debian's chromium, driven by Playwright, on a real daemon.

Playwright's own browsers are never downloaded: it launches /usr/bin/chromium, which
`.ci/run` installs where apt works. Without it the tests skip and say so. Each test
saves a screenshot under its tmp dir; README's docs/status-page.png is one of them.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, expect, sync_playwright

from daemonkit import Daemon, DaemonFactory

CHROMIUM = Path("/usr/bin/chromium")
# What this sandbox needs (no user namespaces, no GPU) and what keeps the browser
# from calling home during a test.
LAUNCH_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
# Generous: two cores shared with other test runs. A change reaches the page through
# one blocking query, normally well within a second.
SEEN = 15_000

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"Debian's chromium is not installed at {CHROMIUM} "
    "(apt-get install chromium; .ci/run installs it where apt works)",
)


def closed_port() -> int:
    """A loopback port nothing listens on, so that a TCP check of it is critical."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


WEB = """\
services:
  - {name: web, id: web-1, port: 8080, protocol: http, version: "2.4.1", tags: [blue, public], meta: {team: edge}}
  - {name: web, id: web-2, port: 8081, protocol: http, version: "2.5.0", tags: [green, canary], meta: {team: edge}}
"""
DB = """\
name: postgresql
tags: [primary]
checks:
  - {id: pg-port, tcp: "127.0.0.1:%d", interval: 1s, timeout: 1s}
"""
CACHE = "name: redis\nid: cache-main\nport: 6379\nprotocol: redis\ntags: [cache]\nmeta: {maxmemory: 2gb}\n"
BROKEN = "name: billing\nport: 9100\nprotcol: http\n"


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def shop(start_daemon: DaemonFactory) -> Daemon:
    """A daemon with a web service of two instances and a database whose check fails."""
    return start_daemon(files={"web.yaml": WEB, "db.yaml": DB % closed_port()})


def service(page: Page, name: str) -> Locator:
    return page.locator(f'tbody[data-service="{name}"]')


def test_the_page_follows_the_catalog_and_filters_without_a_reload(
    shop: Daemon, browser: Browser, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", console)
    page.goto(shop.http_url + "/ui/")
    # The inline script runs: its CSP hash is right.
    expect(page.locator("#conn")).to_have_text("live", timeout=SEEN)
    expect(service(page, "postgresql").locator("tr[data-status=critical]")).to_contain_text("pg-port", timeout=SEEN)
    # A mark that a reload would wipe out.
    page.evaluate("window.stillTheSamePage = true")

    (shop.services_dir / "cache.yaml").write_text(CACHE)
    expect(service(page, "redis")).to_contain_text("redis://127.0.0.1:6379", timeout=SEEN)
    (shop.services_dir / "billing.yaml").write_text(BROKEN)
    rejected = page.locator('#files li[data-file$="billing.yaml"]')
    expect(rejected).to_contain_text("protcol", timeout=SEEN)
    expect(rejected).to_contain_text("did you mean 'protocol'")
    assert page.evaluate("window.stillTheSamePage") is True

    page.fill("#filter", "CACH")  # the tag of redis, in any case
    expect(service(page, "web")).to_be_hidden()
    expect(service(page, "postgresql")).to_be_hidden()
    expect(service(page, "redis")).to_be_visible()
    # Then the server answers the same filter, and the address says it for a reload.
    expect(page.locator("#services h2")).to_contain_text("matching cach", timeout=SEEN)
    assert page.url.endswith("/ui/?filter=cach")
    expect(page.locator("tbody[data-service]")).to_have_count(1)
    page.fill("#filter", "blue")  # a tag of one web instance
    expect(service(page, "web")).to_be_visible(timeout=SEEN)
    expect(service(page, "redis")).to_be_hidden()

    page.fill("#filter", "")
    expect(page.locator("tbody[data-service]")).to_have_count(3, timeout=SEEN)
    expect(page.locator("#services h2")).to_have_text("Services")
    assert page.evaluate("window.stillTheSamePage") is True
    page.screenshot(path=str(tmp_path / "status-page.png"), full_page=True)
    assert (tmp_path / "status-page.png").stat().st_size > 10_000
    # No CSP refusal or script error; a 404 for /favicon.ico is the browser's own doing.
    assert [e for e in errors if "favicon" not in e] == []


def test_without_javascript_the_page_is_complete_and_the_filter_is_a_form(
    shop: Daemon, browser: Browser, tmp_path: Path
) -> None:
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.goto(shop.http_url + "/ui")  # the redirect to /ui/
        assert page.url == shop.http_url + "/ui/"
        expect(page.locator("#conn")).to_have_text("static: reload to refresh")
        expect(page.locator("tbody[data-service]")).to_have_count(2)
        expect(service(page, "web")).to_contain_text("http://127.0.0.1:8081")
        expect(page.locator("#node")).to_contain_text("cpu")
        expect(page.locator("#rules")).to_contain_text("redis-stack-server")
        expect(page.locator("#events")).to_contain_text("registration")

        page.fill("#filter", "Postgres")
        page.click("button[type=submit]")
        page.wait_for_url("**/ui/?filter=Postgres")
        expect(page.locator("tbody[data-service]")).to_have_count(1)
        expect(service(page, "postgresql")).to_be_visible()
        expect(page.locator("#filter")).to_have_value("postgres")
        page.screenshot(path=str(tmp_path / "status-page-no-script.png"), full_page=True)
    finally:
        context.close()
