"""The document explorer at `/`, driven in Debian's headless Chromium
(`chromium` and `chromium-driver`, installed by the set-up where the suite
may use apt-get) against a live API over a real reactor: a document's
header, state, children and operations newest first; an action submitted
through the API appears without a reload; with authentication the page
sends the token from its field and shows who wrote each operation; data
is rendered as text, never as markup. Also the two API additions the page
reads: `GET /v1/types` and operations newest first."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from reactor.api.http import JwtHandler, create_app
from reactor.api.http.server import ApiServer
from reactor.api.reactor import Reactor
from tests.conftest import Stack, worker_env
from tests.support import debian
from tests.support.http_api import DRIVE, TODO, add, create, relate, served, todo_job

pytestmark = pytest.mark.usefixtures("worker")

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Where the lead looks at the page once a run is over.
SHARED_SCREENSHOT = Path("/tmp/explorer.png")
# Seconds the page gets to show a change: beyond a poll interval and a
# loaded machine, never a measure of speed.
SHOWN_WITHIN_S = 60
WINDOW = (1400, 1000)
MAX_SCREENSHOT_HEIGHT = 2400
CLI_TIMEOUT_S = 120
# Operations in one document's global scope: more than the page shows at once.
LONG_LOG = 30
SECRET = "an-explorer-test-secret-of-32-bytes!"


def _installed() -> bool:
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    if not _installed():
        debian.install("chromium")
        debian.install("chromium-driver")
    if not _installed():
        pytest.skip(
            "Debian's chromium and chromium-driver are not installed and apt-get could not "
            "install them (it needs root)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


async def shown(driver: WebDriver, condition: Callable[[WebDriver], Any], what: str) -> Any:
    """Waits in a thread: the API serves from this test's event loop."""
    wait = WebDriverWait(
        driver,
        SHOWN_WITHIN_S,
        poll_frequency=0.1,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    )
    return await asyncio.to_thread(wait.until, condition, f"the page to show {what}")


def text_of(element_id: str) -> Callable[[WebDriver], str]:
    """Read in one script: the page replaces what it re-renders, so an
    element found by one call may be gone by the next."""

    def read(driver: WebDriver) -> str:
        script = "const e = document.getElementById(arguments[0]); return e ? e.innerText : ''"
        return str(driver.execute_script(script, element_id))

    return read


def operation_types(driver: WebDriver) -> list[str]:
    script = "return [...document.querySelectorAll('#ops-body td.op-type')].map(e => e.innerText)"
    return list(driver.execute_script(script))


def indexes(driver: WebDriver) -> list[int]:
    script = "return [...document.querySelectorAll('#ops-body tr')].map(r => r.dataset.index)"
    return [int(i) for i in driver.execute_script(script)]


def whole_page(driver: WebDriver, *paths: Path) -> None:
    """Screenshots of the page from top to bottom, operations included."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    assert isinstance(driver, webdriver.Chrome)
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {
            "width": WINDOW[0],
            "height": min(int(height), MAX_SCREENSHOT_HEIGHT),
            "deviceScaleFactor": 1,
            "mobile": False,
        },
    )
    for path in paths:
        driver.save_screenshot(str(path))


async def submitted(
    api: httpx.AsyncClient, jobs: list[dict[str, Any]], headers: dict[str, str] | None = None
) -> None:
    answer = await api.post(
        "/v1/batches", params={"wait": "true"}, json={"jobs": jobs}, headers=headers or {}
    )
    assert answer.status_code == 200, answer.text
    assert {j["status"] for j in answer.json()["jobs"].values()} == {"READ_READY"}, answer.text


async def test_the_page_shows_a_document_and_an_action_from_the_api_without_a_reload(
    reactor: Reactor, browser: WebDriver, tmp_path: Path
) -> None:
    async with served(reactor) as api:
        await submitted(
            api,
            [
                create("ex-drive", DRIVE),
                create("ex-list"),
                todo_job("ex-list", add("1", "milk"), key="milk", after="create-ex-list"),
                relate("ex-drive", "ex-list", key="relate"),
            ],
        )
        base = str(api.base_url).rstrip("/")
        await asyncio.to_thread(browser.get, f"{base}/#/doc/ex-drive")

        def child_link(driver: WebDriver) -> Any:
            links = driver.find_elements(By.CSS_SELECTOR, "#doc-children a")
            return next((a for a in links if a.text == "ex-list"), False)

        link = await shown(browser, child_link, "the drive's child")
        await asyncio.to_thread(link.click)
        await shown(browser, lambda d: "milk" in text_of("state-global")(d), "the list's state")
        assert text_of("doc-title")(browser) == "ex-list"
        header = browser.find_element(By.ID, "doc-header").text
        assert "ex-list" in header and TODO in header
        assert operation_types(browser) == ["ADD_TODO_ITEM", "CREATE_DOCUMENT"]
        # The documents of every type are listed beside it.
        listed = {
            li.get_attribute("data-id")
            for li in browser.find_elements(By.CSS_SELECTOR, "#documents li")
        }
        assert {"ex-drive", "ex-list"} <= listed
        browser.execute_script("window.explorerNotReloaded = true")
        await shown(browser, lambda d: text_of("live")(d) == "live", "the event stream open")

        answer = await api.post(
            "/v1/documents/ex-list/actions",
            params={"wait": "true"},
            json={"actions": [add("2", "eggs")]},
        )
        assert answer.status_code == 200, answer.text
        await shown(browser, lambda d: "eggs" in text_of("state-global")(d), "the new item")
        await shown(
            browser,
            lambda d: operation_types(d) == ["ADD_TODO_ITEM", "ADD_TODO_ITEM", "CREATE_DOCUMENT"],
            "the new operation first",
        )
        assert browser.execute_script("return window.explorerNotReloaded") is True
        newest = browser.find_element(By.CSS_SELECTOR, "#ops-body tr")
        assert newest.get_attribute("data-index") == "1"
        assert newest.get_attribute("data-scope") == "global"
        await asyncio.to_thread(whole_page, browser, tmp_path / "explorer.png", SHARED_SCREENSHOT)
        assert (tmp_path / "explorer.png").stat().st_size > 0


async def test_the_log_pages_back_to_the_first_operation_and_stays_open_on_a_change(
    reactor: Reactor, browser: WebDriver
) -> None:
    items = [add(str(i), f"item {i}") for i in range(LONG_LOG)]
    async with served(reactor) as api:
        await submitted(
            api, [create("ex-long"), todo_job("ex-long", *items, key="add", after="create-ex-long")]
        )
        base = str(api.base_url).rstrip("/")
        await asyncio.to_thread(browser.get, f"{base}/#/doc/ex-long")
        more = await shown(browser, lambda d: d.find_element(By.ID, "ops-more"), "the log")
        await shown(browser, lambda d: more.is_displayed(), "a button for older operations")
        first_page = indexes(browser)
        assert first_page == list(range(LONG_LOG - 1, LONG_LOG - 1 - len(first_page), -1))
        assert len(first_page) < LONG_LOG
        await asyncio.to_thread(more.click)
        await shown(browser, lambda d: not more.is_displayed(), "the whole log")
        assert indexes(browser) == [*range(LONG_LOG - 1, -1, -1), 0]
        assert operation_types(browser)[-1] == "CREATE_DOCUMENT"

        answer = await api.post(
            "/v1/documents/ex-long/actions",
            params={"wait": "true"},
            json={"actions": [add("last", "the last item")]},
        )
        assert answer.status_code == 200, answer.text
        await shown(browser, lambda d: indexes(d)[0] == LONG_LOG, "the new operation")
        assert indexes(browser) == [*range(LONG_LOG, -1, -1), 0]


async def test_a_change_made_from_the_cli_appears_in_the_open_page(
    reactor: Reactor,
    browser: WebDriver,
    stack: Stack,
    database_url: str,
    task_queue: str,
    tmp_path: Path,
) -> None:
    async with served(reactor) as api:
        await submitted(api, [create("ex-cli")])
        base = str(api.base_url).rstrip("/")
        await asyncio.to_thread(browser.get, f"{base}/#/doc/ex-cli")
        await shown(browser, lambda d: operation_types(d) == ["CREATE_DOCUMENT"], "the document")
        await shown(browser, lambda d: text_of("live")(d) == "live", "the event stream open")
        browser.execute_script("window.explorerNotReloaded = true")

        batch = tmp_path / "batch.json"
        batch.write_text(json.dumps({"jobs": [todo_job("ex-cli", add("1", "bread"), key="cli")]}))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "reactor.cli.main",
            "submit",
            str(batch),
            "--wait",
            env=worker_env(stack, database_url, task_queue),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT_S)
        assert proc.returncode == 0, (out + err).decode(errors="replace")

        await shown(browser, lambda d: "bread" in text_of("state-global")(d), "the CLI's item")
        assert operation_types(browser) == ["ADD_TODO_ITEM", "CREATE_DOCUMENT"]
        assert browser.execute_script("return window.explorerNotReloaded") is True


async def test_without_an_event_stream_the_page_polls_and_still_shows_a_change(
    reactor: Reactor, browser: WebDriver
) -> None:
    app = create_app(reactor)

    # A server without the stream (or one that refuses it) must not leave the page stale.
    @app.middleware("http")
    async def no_stream(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path == "/v1/events":
            return JSONResponse({"error": {"type": "not_found", "message": "no stream"}}, 404)
        return await call_next(request)

    async with (
        ApiServer(app) as server,
        httpx.AsyncClient(base_url=server.url, timeout=60) as api,
    ):
        await submitted(api, [create("ex-poll")])
        assert (await api.get("/v1/events", params={"id": "ex-poll"})).status_code == 404
        await asyncio.to_thread(browser.get, f"{server.url}/#/doc/ex-poll")
        await shown(browser, lambda d: text_of("live")(d).startswith("polling"), "polling")
        await shown(browser, lambda d: operation_types(d) == ["CREATE_DOCUMENT"], "the document")
        answer = await api.post(
            "/v1/documents/ex-poll/actions",
            params={"wait": "true"},
            json={"actions": [add("1", "jam")]},
        )
        assert answer.status_code == 200, answer.text
        await shown(browser, lambda d: "jam" in text_of("state-global")(d), "the polled change")


async def test_with_authentication_the_token_field_is_used_and_the_writer_is_shown(
    reactor: Reactor, browser: WebDriver
) -> None:
    handler = JwtHandler(secret=SECRET)
    token = jwt.encode({"sub": "alice", "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")
    async with served(reactor, handler) as api:
        bearer = {"authorization": f"Bearer {token}"}
        await submitted(
            api,
            [create("ex-auth"), todo_job("ex-auth", add("1"), key="add", after="create-ex-auth")],
            bearer,
        )
        base = str(api.base_url).rstrip("/")
        await asyncio.to_thread(browser.get, f"{base}/#/doc/ex-auth")
        await shown(browser, lambda d: "bearer token" in text_of("status")(d), "the token prompt")

        field = browser.find_element(By.ID, "token")
        await asyncio.to_thread(field.send_keys, token)
        await asyncio.to_thread(browser.find_element(By.CSS_SELECTOR, "#token-form button").click)

        def writers(driver: WebDriver) -> list[str]:
            return [td.text for td in driver.find_elements(By.CSS_SELECTOR, "#ops-body td.by")]

        await shown(browser, lambda d: writers(d) == ["alice", "alice"], "who wrote each operation")
        assert (
            browser.execute_script("return sessionStorage.getItem('reactor.explorer.token')")
            == token
        )
        # The stream is read with the token in a header (EventSource cannot send one).
        await shown(browser, lambda d: text_of("live")(d) == "live", "the event stream open")

        answer = await api.post(
            "/v1/documents/ex-auth/actions",
            params={"wait": "true"},
            json={"actions": [add("2", "tea")]},
            headers=bearer,
        )
        assert answer.status_code == 200, answer.text
        await shown(browser, lambda d: "tea" in text_of("state-global")(d), "the new item")


async def test_what_a_document_holds_is_rendered_as_text(
    reactor: Reactor, browser: WebDriver
) -> None:
    markup = "<img src=x onerror=window.explorerInjected=true>"
    async with served(reactor) as api:
        await submitted(
            api,
            [
                create("ex-text"),
                todo_job("ex-text", add("1", markup), key="add", after="create-ex-text"),
            ],
        )
        base = str(api.base_url).rstrip("/")
        await asyncio.to_thread(browser.get, f"{base}/#/doc/ex-text")
        await shown(browser, lambda d: markup in text_of("state-global")(d), "the markup as text")
        assert browser.find_elements(By.CSS_SELECTOR, "#doc-state img") == []
        assert browser.execute_script("return window.explorerInjected") is None


async def test_the_types_endpoint_lists_the_registered_types_a_token_may_read(
    reactor: Reactor,
) -> None:
    async with served(reactor) as api:
        answer = await api.get("/v1/types")
        assert answer.status_code == 200, answer.text
        assert {TODO, DRIVE} <= set(answer.json()["types"])
        assert answer.json()["types"] == sorted(answer.json()["types"])
    handler = JwtHandler(secret=SECRET)
    only_todo = jwt.encode(
        {"sub": "bob", "exp": int(time.time()) + 600, "document_types": [TODO]},
        SECRET,
        algorithm="HS256",
    )
    async with served(reactor, handler) as api:
        assert (await api.get("/v1/types")).status_code == 401
        answer = await api.get("/v1/types", headers={"authorization": f"Bearer {only_todo}"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["types"] == [TODO]


async def test_operations_newest_first_page_back_through_the_whole_log(
    reactor: Reactor,
) -> None:
    async with served(reactor) as api:
        items = [add(str(i), f"item {i}") for i in range(7)]
        await submitted(
            api, [create("ex-log"), todo_job("ex-log", *items, key="add", after="create-ex-log")]
        )
        seen: list[tuple[str, int]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"newest_first": "true", "limit": 3}
            if cursor is not None:
                params["cursor"] = cursor
            answer = await api.get("/v1/documents/ex-log/operations", params=params)
            assert answer.status_code == 200, answer.text
            seen += [(op["scope"], op["index"]) for op in answer.json()["results"]]
            cursor = answer.json()["next_cursor"]
            if cursor is None:
                break
        assert seen == [("global", i) for i in range(6, -1, -1)] + [("document", 0)]
        oldest_first = await api.get("/v1/documents/ex-log/operations", params={"limit": 3})
        other = oldest_first.json()["next_cursor"]
        refused = await api.get(
            "/v1/documents/ex-log/operations", params={"newest_first": "true", "cursor": other}
        )
        assert refused.status_code == 400
        assert refused.json()["error"]["field"] == "cursor"


async def test_the_page_and_its_files_are_served_with_a_policy_allowing_only_their_own(
    reactor: Reactor,
) -> None:
    async with served(reactor) as api:
        page = await api.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "connect-src 'self'" in policy
        assert "<script>" not in page.text
        for name, kind in (("explorer.js", "text/javascript"), ("explorer.css", "text/css")):
            assert f"/explorer/{name}" in page.text
            asset = await api.get(f"/explorer/{name}")
            assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
        assert "innerHTML" not in (await api.get("/explorer/explorer.js")).text
        missing = await api.get("/explorer/secrets.txt")
        assert missing.status_code == 404 and missing.json()["error"]["field"] == "path"
        assert "/" not in (await api.get("/openapi.json")).json()["paths"]
