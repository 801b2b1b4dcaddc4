"""Debian's chromium under Playwright for Python, launched the one way the
tests and benchmarks use: headless, no sandbox (root in CI), and none of
the background connections this machine's closed network refuses."""

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-quic"]


def launch(playwright):
    """A headless Debian chromium (executable_path: no browser download)."""
    return playwright.chromium.launch(
        executable_path="/usr/bin/chromium", headless=True, args=ARGS)
