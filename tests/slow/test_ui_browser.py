"""The Dagster UI in a real browser (issue 11, item 6). Contract: `dagster-webserver` over the project's
workspace renders, in headless Chromium, the asset graph with its nodes, an asset's blocking check
result, and a materialization's PNG plot (markdown metadata with an inlined data:image/png) as a
decoded image; a screenshot of the graph is a real picture. Chromium is driven over the DevTools
protocol: the UI is a JavaScript app, so every assertion polls the rendered DOM."""

import base64
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest
from websockets.sync.client import connect

from tests.dagster_resources import tmp_resources
from tests.slow.conftest import REPO, chromium_binary, free_port, wait_for

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1400,900", "--remote-debugging-port=0",
)  # fmt: skip
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def start_chromium(user_dir: Path) -> tuple[subprocess.Popen, str]:
    """Headless Chromium on a free DevTools port; the process and its page's DevTools websocket URL."""
    user_dir.mkdir()
    cmd = [chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={user_dir}", "about:blank"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file = user_dir / "DevToolsActivePort"
    wait_for(lambda: port_file.exists() and port_file.read_text().count("\n") >= 1, 60, "Chromium's DevTools port")
    with urllib.request.urlopen(f"http://127.0.0.1:{port_file.read_text().split()[0]}/json/list") as response:
        (page,) = [t for t in json.load(response) if t["type"] == "page"]
    return proc, page["webSocketDebuggerUrl"]


class Browser:
    """One Chromium page, driven over the DevTools protocol (commands only, events ignored)."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == self.next_id:
                assert "error" not in message, (method, message["error"])
                return message["result"]

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def open(self, url: str, *texts: str, timeout: float = 120) -> str:
        """Navigate, then wait until the rendered page shows every one of ``texts``; its text."""
        self.call("Page.navigate", url=url)
        body = lambda: self.js("document.body ? document.body.innerText : ''")  # noqa: E731
        wait_for(lambda: all(t in body() for t in texts), timeout, lambda: f"{texts} on {url}; page:\n{body()[:2000]}")
        return body()


@pytest.fixture
def ui_home(tmp_path, monkeypatch):
    """A DAGSTER_HOME (the embedded yaml) holding one real run: raw_tables and engagement_events of
    the tiny synthetic world, whose `actions_plot` metadata is a PNG and whose `gx_suite` check passed."""
    from assets import data

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize(
            [data.raw_tables, data.engagement_events],
            instance=instance,
            resources=tmp_resources(tmp_path / "data"),
            partition_key="synthetic",
            run_config={"ops": {"raw_tables": {"config": {"synthetic_size": "tiny"}}}},
        )
    assert result.success
    return home


@pytest.fixture
def webserver(ui_home, tmp_path):
    """`dagster-webserver` on a free port over the project's workspace; its base URL once it answers."""
    port = free_port()
    log = (tmp_path / "webserver.log").open("w")
    cmd = [Path(sys.executable).with_name("dagster-webserver"), "-w", REPO / "workspace.yaml"]
    proc = subprocess.Popen(
        [*cmd, "-h", "127.0.0.1", "-p", str(port)], cwd=REPO, env=os.environ, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: _answers(f"{url}/server_info"), 180, lambda: f"the webserver:\n{_tail(tmp_path / 'webserver.log')}"
        )
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def _tail(path: Path) -> str:
    return "\n".join(path.read_text().splitlines()[-30:])


@pytest.fixture
def browser(tmp_path):
    proc, url = start_chromium(tmp_path / "chromium")
    try:
        with connect(url, max_size=64 * 2**20) as ws:
            yield Browser(ws)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


SKIP_NEWSLETTER = """(() => {
  const skip = [...document.querySelectorAll('button')].find(b => b.innerText.trim() === 'Skip');
  if (skip) skip.click();
  return !document.body.innerText.includes('Join the Dagster community');
})()"""
SHOW_PLOT = """(() => {
  const row = [...document.querySelectorAll('tr')].find(r => r.innerText.trim().startsWith('actions_plot'));
  const link = row && [...row.querySelectorAll('a, button')].find(b => b.innerText.includes('Show Markdown'));
  if (link) link.click();
  return Boolean(link);
})()"""
PLOT_IMAGE = """(() => {
  const img = document.querySelector('img[src^="data:image/png;base64,"]');
  return img && img.complete && img.naturalWidth > 0 ? [img.alt, img.naturalWidth, img.naturalHeight] : null;
})()"""


@pytest.mark.slow
def test_ui_renders_graph_checks_and_plots(webserver, browser, tmp_path):
    """Graph nodes, the check's result and the decoded plot, as a user sees them; a graph screenshot."""
    groups = browser.open(f"{webserver}/asset-groups", "Global asset lineage")
    wait_for(lambda: {"data", "models", "serving"} <= set(browser.js("document.body.innerText").split()), 60, "groups")
    assert "Reload definitions" in groups
    browser.open(f"{webserver}/assets/engagement_events?view=lineage", "raw_interactions", "raw_items")
    wait_for(lambda: browser.js(SKIP_NEWSLETTER), 30, "the newsletter dialog to close")  # it covers the graph
    time.sleep(1)  # its fade-out
    shot = base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"])
    (tmp_path / "graph.png").write_bytes(shot)
    # The graph measured 124 kB; a blank 1400x900 page is 5.7 kB.
    assert shot.startswith(PNG_MAGIC) and len(shot) > 30_000

    checks = browser.open(f"{webserver}/assets/engagement_events?view=checks", "gx_suite", "Succeeded")
    assert "all 6 expectations passed" in checks

    browser.open(f"{webserver}/assets/engagement_events?view=events", "actions_plot", "synthetic")
    wait_for(lambda: browser.js(SHOW_PLOT), 30, "the plot's [Show Markdown] link")
    alt, width, height = wait_for(lambda: browser.js(PLOT_IMAGE), 30, "the plot's decoded <img>")
    assert alt == "actions" and width >= 300 and height >= 150, (alt, width, height)
