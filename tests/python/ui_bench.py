"""The web UI's figures in Debian's headless chromium (Playwright for
Python): first contentful paint and time to live data of coworkd's page,
against the same files served by nginx (the baseline, in the same run),
and coworkd's RSS before the browser and while a tab is open.

usage: ui_bench.py URL_WITH_CODE BASELINE_URL COWORKD_PID LOADS

Prints one JSON object.
"""
import json
import statistics
import sys
import time

from playwright.sync_api import sync_playwright

from debian_chromium import launch

url, baseline, pid, loads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
origin = url.split("/#", 1)[0]


def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def rss_median(n=5):
    v = []
    for _ in range(n):
        v.append(rss_kib())
        time.sleep(0.2)
    return statistics.median(v)


def fcp(page):
    """The page's first contentful paint (ms from navigation start)."""
    page.wait_for_function(
        "() => performance.getEntriesByName('first-contentful-paint').length > 0", timeout=10000)
    return page.evaluate("performance.getEntriesByName('first-contentful-paint')[0].startTime")


out = {"rss_before_kib": rss_median()}

with sync_playwright() as p:
    browser = launch(p)
    ctx = browser.new_context()
    page = ctx.new_page()
    t0 = time.perf_counter()
    page.goto(url)
    page.wait_for_selector("#workers tbody tr[data-worker=agents]", timeout=20000)
    out["cold"] = {"fcp_ms": fcp(page), "live_ms": (time.perf_counter() - t0) * 1000}
    paints, live, base = [], [], []
    for _ in range(loads):
        page.goto("about:blank")
        t0 = time.perf_counter()
        page.goto(f"{origin}/#status")
        page.wait_for_selector("#workers tbody tr[data-worker=agents]", timeout=20000)
        live.append((time.perf_counter() - t0) * 1000)
        paints.append(fcp(page))
    other = browser.new_context().new_page()
    for _ in range(loads):
        other.goto("about:blank")
        other.goto(baseline)
        other.wait_for_load_state("load")
        base.append(fcp(other))
    other.close()
    out["fcp_ms"] = {"p50": statistics.median(paints), "max": max(paints)}
    out["live_ms"] = {"p50": statistics.median(live), "max": max(live)}
    out["baseline_fcp_ms"] = {"p50": statistics.median(base), "max": max(base)}
    # Every screen once (each one's calls), then one tab open on the status
    # screen (WatchHealth streaming, approvals asked for every 2 s) for a
    # while, then coworkd's RSS.
    for screen in ("chat", "approvals", "context", "memory", "capture", "models",
                   "mcp", "automations", "browser", "status"):
        page.goto(f"{origin}/#{screen}")
        page.wait_for_timeout(700)
    time.sleep(6)
    out["rss_tab_open_kib"] = rss_median()
    browser.close()
out["rss_after_close_kib"] = rss_median()
print(json.dumps(out))
