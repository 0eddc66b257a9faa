"""The report in a real browser (headless Chromium): every image loads, nothing scrolls sideways
at 1024 px, and every in-page link (the neuron table's links to the cards included) resolves and
shows its target. Skipped where no Chromium or Chrome is installed (Debian: apt-get install chromium).

The checks run inside the page: a copy of report.html gets a script that writes its findings
into the DOM, and ``chromium --headless --dump-dom`` prints that DOM; no driver is needed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from report_support import report_run

pytestmark = pytest.mark.slow
FIXTURES = (report_run,)  # shared with the other report tests, trained once

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

CHECKS = """
<script>
window.addEventListener('load', function () {
  var out = {};
  var images = Array.prototype.slice.call(document.images);
  out.images = images.length;
  out.broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
    .map(function (i) { return i.alt || i.src.slice(0, 40); });
  out.scroll_width = document.documentElement.scrollWidth;
  out.view_width = document.documentElement.clientWidth;
  var links = Array.prototype.slice.call(document.querySelectorAll('a[href^="#"]'));
  out.links = links.length;
  out.unresolved = links.map(function (a) { return a.getAttribute('href').slice(1); })
    .filter(function (id) { return !document.getElementById(id); });
  var cards = Array.prototype.slice.call(document.querySelectorAll('#neuron-table a'));
  out.card_links = cards.length;
  out.hidden_cards = [];
  cards.forEach(function (a) {
    var id = a.getAttribute('href').slice(1);
    location.hash = '#' + id;  // a fragment navigation: the card becomes :target and shows
    var card = document.getElementById(id);
    var shown = card && card.matches(':target') && card.getBoundingClientRect().height > 50;
    if (!shown) { out.hidden_cards.push(id); }
  });
  var pre = document.createElement('pre');
  pre.id = 'browser-checks';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def find_browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def browser_checks(page: Path, width: int, tmp_path: Path) -> dict:
    """Open a copy of `page` (same folder, so relative links still work) at `width` px."""
    browser = find_browser()
    if browser is None:
        pytest.skip("no Chromium or Chrome found (Debian: apt-get install chromium)")
    copy = page.with_name(f".browser-check-{width}.html")
    copy.write_text(page.read_text().replace("</body>", CHECKS + "</body>"))
    try:
        done = subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                f"--user-data-dir={tmp_path / f'profile-{width}'}",
                f"--window-size={width},800",
                "--virtual-time-budget=10000",
                "--dump-dom",
                copy.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        copy.unlink(missing_ok=True)
    found = re.search(r'<pre id="browser-checks">(.*?)</pre>', done.stdout, re.S)
    if found is None:
        pytest.fail(f"the browser wrote no checks (exit {done.returncode}): {done.stderr[-2000:]}")
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.mark.parametrize("width", [1024, 1400])
def test_report_in_a_real_browser(report_run: Path, tmp_path: Path, width: int) -> None:
    checks = browser_checks(report_run / "eval" / "report.html", width, tmp_path)
    assert checks["images"] >= 5
    assert checks["broken"] == []
    assert checks["scroll_width"] <= checks["view_width"], "the page scrolls sideways"
    assert checks["unresolved"] == []
    assert checks["card_links"] == 10
    assert checks["hidden_cards"] == []
