"""Drive the web UI's management screens in Debian's headless chromium
(Playwright for Python) and print one JSON object with what they showed.

usage: ui_manage.py URL_WITH_CODE SCREENSHOT_DIR DOWNLOAD_URL SHA256 SECRET

- the failed-worker banner (capture is `failed` when this starts) and its
  Retry button, live from WatchHealth;
- models: a download from DOWNLOAD_URL with its progress bar, then the fit
  verdict of the downloaded file;
- MCP: the catalog entry `demo`'s form (drawn from its JSON Schema), its
  secret typed into a password field, the server connected, and the secret
  nowhere in the page afterwards;
- automations: a flow run from the page;
- the browser's execution log.
"""
import json
import os
import sys

from playwright.sync_api import sync_playwright

from debian_chromium import launch

url, shots, download_url, sha, secret = sys.argv[1:6]
origin = url.split("/#", 1)[0]
os.makedirs(shots, exist_ok=True)
out = {}

with sync_playwright() as p:
    browser = launch(p)
    page = browser.new_page(viewport={"width": 1100, "height": 760})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)

    # The failed worker's banner, and Retry.
    page.wait_for_selector(".banner[data-banner=capture]", timeout=20000)
    out["banner"] = page.text_content(".banner[data-banner=capture]")
    out["banner_class"] = page.get_attribute(".banner[data-banner=capture]", "class")
    out["capture_reason"] = page.text_content("#workers tr[data-worker=capture] td:nth-child(5)")
    page.screenshot(path=f"{shots}/banner.png")
    page.click(".banner[data-banner=capture] button")
    page.wait_for_selector(".banner[data-banner=capture]", state="detached", timeout=30000)
    out["capture_after_retry"] = page.text_content("#workers tr[data-worker=capture] .state")

    # Models: a download with its progress bar, then the file's fit.
    page.goto(f"{origin}/#models")
    page.wait_for_function("() => document.getElementById('machine').textContent !== ''", timeout=15000)
    page.fill("#pull-url", download_url)
    page.fill("#pull-sha", sha)
    page.fill("#pull-name", "ui-gemma.gguf")
    page.click("#pull-form button")
    page.wait_for_function(
        "() => { const b = document.querySelector('.download progress'); return b && b.value > 0 && b.value < b.max; }",
        timeout=60000)
    out["progress_seen"] = page.evaluate(
        "(() => { const b = document.querySelector('.download progress'); return [b.value, b.max]; })()")
    page.screenshot(path=f"{shots}/models-downloading.png")
    page.wait_for_selector(".download[data-state=done]", timeout=180000)
    row = "#model-files tr[data-file='ui-gemma.gguf']"
    page.wait_for_selector(row, timeout=15000)
    page.click(f"{row} button")
    page.wait_for_selector(f"{row} .fit", timeout=30000)
    out["fit"] = page.text_content(f"{row} .verdict")
    page.screenshot(path=f"{shots}/models.png")

    # MCP: the catalog's form, a secret in a password field.
    page.goto(f"{origin}/#mcp")
    form = "form[data-catalog=demo]"
    page.wait_for_selector(form, state="attached", timeout=15000)
    page.click(f".card:has({form}) summary")
    out["secret_field_type"] = page.get_attribute(f"{form} input[name=token]", "type")
    page.fill(f"{form} input[name=__name]", "d")
    page.fill(f"{form} input[name=token]", secret)
    page.screenshot(path=f"{shots}/mcp-form.png")
    page.click(f"{form} button[type=submit]")
    page.wait_for_selector("#mcp-servers tr[data-server=d]", timeout=30000)
    page.wait_for_function(
        "() => document.querySelector('#mcp-servers tr[data-server=d] td:nth-child(2)').textContent.startsWith('running')",
        timeout=30000)
    out["server_row"] = page.text_content("#mcp-servers tr[data-server=d]")
    out["secret_in_page"] = secret in page.content() or secret in page.evaluate(
        "[...document.querySelectorAll('input')].map(i => i.value).join(' ')")
    page.screenshot(path=f"{shots}/mcp.png")

    # Automations: run a flow from the page.
    page.goto(f"{origin}/#automations")
    page.wait_for_selector("#flows tbody tr", timeout=15000)
    page.click("#flows tbody tr button")
    page.wait_for_selector("#runs tbody tr", timeout=30000)
    # The screen follows the run (it looks again every 2 s) to its end.
    page.wait_for_function(
        "() => { const r = document.querySelector('#runs tbody tr td:nth-child(2)'); return r && !r.textContent.startsWith('running'); }",
        timeout=30000)
    out["run_row"] = page.text_content("#runs tbody tr")
    page.click("#runs tbody tr .steps button")
    page.wait_for_selector("#runs tbody tr .steps div", timeout=15000)
    out["run_steps"] = page.text_content("#runs tbody tr .steps")
    page.screenshot(path=f"{shots}/automations.png")

    # The browser's execution log.
    page.goto(f"{origin}/#browser")
    page.wait_for_selector("#browser-log tbody tr", timeout=30000)
    out["log_rows"] = page.eval_on_selector_all(
        "#browser-log tbody tr", "rs => rs.map(r => r.dataset.action)")
    page.wait_for_function(
        "() => { const i = document.querySelector('#browser-log img.shot'); return i && i.complete && i.naturalWidth > 0; }",
        timeout=30000)
    out["log_image"] = page.evaluate(
        "(() => { const i = document.querySelector('#browser-log img.shot'); "
        "return [i.closest('tr').dataset.action, i.naturalWidth, i.naturalHeight]; })()")
    page.screenshot(path=f"{shots}/browser.png")
    out["errors"] = errors
    browser.close()

print(json.dumps(out))
