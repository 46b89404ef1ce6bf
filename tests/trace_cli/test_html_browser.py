"""The `gradlint trace --html` page, opened in a real headless Chromium."""

import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)
from click.testing import CliRunner  # noqa: E402

from gradlint.cli.trace import trace_command  # noqa: E402

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "trace"


def _chromium():
    for cand in (
        os.environ.get("GRADLINT_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if cand and os.path.exists(cand):
            return cand
    return None


CHROMIUM = _chromium()
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary (apt-get install -y chromium)")
@pytest.mark.skipif(
    shutil.which("dot") is None, reason="Graphviz `dot` is not installed (apt-get install -y graphviz)"
)
def test_html_report_in_headless_chromium(tmp_path):
    page_path = tmp_path / "report.html"
    r = CliRunner().invoke(trace_command, ["--html", str(page_path), str(FIX / "leak.py"), "--steps", "3"])
    assert r.exit_code == 0, r.output

    errors = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda req: errors.append("request failed: " + req.url))
            page.goto(page_path.as_uri(), wait_until="load")
            assert page.title() == "gradlint.trace report"
            findings = page.locator("table.findings")
            assert findings.is_visible()
            assert findings.locator("tbody tr").count() == 1
            assert "GR002" in findings.inner_text() and "total_loss" in findings.inner_text()
            assert page.locator("table.graphs").is_visible()
            imgs = page.locator("img.graph")
            assert imgs.count() == 1
            widths = page.eval_on_selector_all(
                "img.graph", "els => els.map(e => e.complete ? e.naturalWidth : 0)"
            )
            assert widths and all(w > 0 for w in widths), widths
            assert imgs.first.is_visible()
        finally:
            browser.close()
    assert errors == []
