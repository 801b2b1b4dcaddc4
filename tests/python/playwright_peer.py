"""The benchmark's baseline: Playwright for Python driving the same Debian
chromium (executable_path), in process, against the same local site.
Prints one JSON object: per-action p50/p99 in ms over N rounds of
goto(/bench) → fill(#q) → click(#go) → inner_text(body), and, for each
page, the characters of Playwright's snapshots: `aria_snapshot(mode="ai")`
(what Playwright MCP sends a model, with refs) and the plain
`aria_snapshot()`.

usage: playwright_peer.py BASE_URL ROUNDS PAGE[,PAGE...]"""
import json
import statistics
import sys
import time

from playwright.sync_api import sync_playwright

from debian_chromium import launch

base, rounds, pages = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")


def pct(v, p):
    v = sorted(v)
    return v[max(0, min(len(v) - 1, int(round(p * len(v) + 0.5)) - 1))]


with sync_playwright() as p:
    browser = launch(p)
    page = browser.new_page()
    times = {"navigate": [], "type": [], "click": [], "extract": []}
    for i in range(rounds + 3):
        t0 = time.perf_counter(); page.goto(base + "/bench")
        t1 = time.perf_counter(); page.fill("#q", "hello")
        t2 = time.perf_counter(); page.click("#go")
        t3 = time.perf_counter(); text = page.inner_text("body")
        t4 = time.perf_counter()
        assert "Echo: hello" in text, text
        if i >= 3:
            for k, a, b in (("navigate", t0, t1), ("type", t1, t2), ("click", t2, t3), ("extract", t3, t4)):
                times[k].append((b - a) * 1000)
    mcp, aria = {}, {}
    for path in pages:
        page.goto(path if "://" in path else base + path)
        mcp[path] = len(page.aria_snapshot(mode="ai"))
        aria[path] = len(page.locator("body").aria_snapshot())
    browser.close()
    print(json.dumps({
        "p50_ms": {k: statistics.median(v) for k, v in times.items()},
        "p99_ms": {k: pct(v, 0.99) for k, v in times.items()},
        "mcp_snapshot_chars": mcp, "aria_snapshot_chars": aria,
    }))
