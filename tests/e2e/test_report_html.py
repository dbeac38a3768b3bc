"""The reports as their readers see them.

- report.html rendered in headless Chromium (Debian's ``chromium``, over the DevTools pipe): the
  screenshot is not blank, every plot is on screen in its colours, the page logs no error, throws
  nothing and requests nothing but itself.
- A real build writes report.json, report.md, report.html and junit.xml, and ``tinyprune report``
  renders the same bytes again from report.json.
- The budget gate: ``tinyprune check`` with a flash budget one byte under what the firmware uses
  and a RAM budget exactly at it exits 1 with the table; JUnit and Markdown say the same.
"""

from __future__ import annotations

import io
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from chromium_cdp import Page, chromium, render_page

from tinyprune.cli import main
from tinyprune.report import render

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "reports"
DIGITS = ROOT / "examples" / "digits"

needs_chromium = pytest.mark.skipif(chromium() is None, reason="chromium not installed "
                                    "(scripts/setup_system.sh installs Debian's chromium)")
needs_gcc = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                               reason="arm-none-eabi-gcc not installed (make setup installs it)")
pytestmark = pytest.mark.e2e

# What each chart must show, by the CSS colour of its main shapes (templates/report).
CHART_COLOURS = {"chart-memory": (240, 140, 46), "chart-cycles": (47, 111, 223),
                 "chart-weights": (240, 140, 46), "chart-arena": (47, 163, 122),
                 "chart-buffers": (240, 140, 46), "chart-variants": (225, 91, 100)}

QUERY = """JSON.stringify({
  charts: Array.from(document.querySelectorAll('svg.chart')).map(s => {
    const r = s.getBoundingClientRect();
    return {id: s.id, x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height,
            shapes: s.querySelectorAll('rect, circle').length,
            texts: s.querySelectorAll('text').length};
  }),
  missing: Array.from(document.querySelectorAll('p.missing')).map(p => p.textContent),
  verdict: document.querySelector('#verdict .badge').textContent,
  width: document.documentElement.scrollWidth
})"""


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def _shown(tmp: Path, name: str, html: str) -> tuple[Page, dict[str, Any]]:
    path = tmp / f"{name}.html"
    path.write_text(html, encoding="utf-8")
    page = render_page(path, tmp / f"profile-{name}", QUERY)
    return page, json.loads(page.query)


@pytest.fixture(scope="module")
def full_page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Page, dict[str, Any]]:
    """base against a baseline, with two other variants: every plot there is."""
    variants = [(n, load(n)) for n in ("base", "pruned25", "pruned50")]
    html = render("report.html", load("base"), load("pruned25"), variants)
    return _shown(tmp_path_factory.mktemp("html"), "full", html)


def _quiet(page: Page) -> None:
    """No console message, no exception, no error or warning logged, no request but the page."""
    assert page.console == [], page.console
    assert page.exceptions == [], page.exceptions
    assert [e for e in page.log if e.get("level") in ("error", "warning")] == [], page.log
    assert len(page.requests) == 1 and page.requests[0].startswith("file://"), page.requests


def _pixels(png: bytes) -> Any:
    image = pytest.importorskip("PIL.Image", reason="Pillow is a [dev] dependency")
    np = pytest.importorskip("numpy")
    return np.asarray(image.open(io.BytesIO(png)).convert("RGB"))


@needs_chromium
def test_full_report_renders_with_every_plot(full_page: tuple[Page, dict[str, Any]]) -> None:
    import numpy as np

    page, dom = full_page
    _quiet(page)
    assert dom["verdict"] == "PASSED" and dom["missing"] == []
    charts = {c["id"]: c for c in dom["charts"]}
    assert set(charts) == set(CHART_COLOURS)
    px = _pixels(page.png)
    assert dom["width"] <= px.shape[1]  # nothing wider than the window
    not_white = (px < 235).any(axis=2).mean()
    colours = len({tuple(c) for c in (px[::4, ::4] // 32).reshape(-1, 3)})
    assert not_white > 0.08 and colours >= 12, (not_white, colours)
    for cid, rgb in CHART_COLOURS.items():
        c = charts[cid]
        assert c["w"] > 300 and c["h"] > 100 and c["shapes"] > 0 and c["texts"] > 0, c
        box = px[int(c["y"]):int(c["y"] + c["h"]), int(c["x"]):int(c["x"] + c["w"])]
        hits = int((np.abs(box.astype(int) - np.array(rgb)).sum(axis=2) < 24).sum())
        assert hits > 60, (cid, hits)  # the chart's shapes are painted where the chart is


@needs_chromium
def test_report_without_cycles_or_data_says_why(tmp_path: Path) -> None:
    page, dom = _shown(tmp_path, "host_only", render("report.html", load("host_only")))
    _quiet(page)
    assert {c["id"] for c in dom["charts"]} == {"chart-memory", "chart-weights"}
    assert any("--emulator none" in m for m in dom["missing"])
    assert any("memory.timeline" in m for m in dom["missing"])
    px = _pixels(page.png)
    assert (px < 235).any(axis=2).mean() > 0.05


def _check(*args: str) -> int:
    return main(["check", "--board", "nucleo_f746", "--samples", "1", "--emulator", "none",
                 "--random-samples", "100", *args])


@needs_gcc
def test_build_writes_every_report_and_the_budget_gate_holds(tmp_path: Path, capsys) -> None:
    out = tmp_path / "build"
    # --no-tcm: TCM placement keeps 256 B of RAM free under a RAM budget, so a build whose RAM
    # budget is the first build's RAM would place less and use less RAM (tests/unit/test_tcm.py)
    assert _check("--model", str(DIGITS / "digits_cnn.keras"), "--out", str(out),
                  "--no-tcm") == 0
    capsys.readouterr()
    files = {n: (out / n).read_text() for n in ("report.md", "report.html", "junit.xml")}
    again = {n: tmp_path / f"again-{n}" for n in files}
    assert main(["report", str(out), "--md", str(again["report.md"]), "--html",
                 str(again["report.html"]), "--junit", str(again["junit.xml"])]) == 0
    assert {n: p.read_text() for n, p in again.items()} == files  # identical re-rendering
    report = json.loads((out / "report.json").read_text())
    flash, ram = report["firmware"]["flash_used_bytes"], report["firmware"]["ram_used_bytes"]

    model = tmp_path / "model_int8.tflite"  # the same int8 model: the same firmware sizes
    shutil.copy(out / "model_int8.tflite", model)
    capsys.readouterr()
    rc = _check("--model", str(model), "--out", str(out), "--flash-budget", str(flash - 1),
                "--ram-budget", str(ram), "--baseline", str(out / "report.json"), "--no-tcm")
    captured = capsys.readouterr()
    assert rc == 1, captured.err
    assert "tinyprune: check failed: budget broken: flash" in captured.err
    table = [ln.split() for ln in captured.out.splitlines()]
    assert ["flash", f"{flash - 1:,}", "B", f"{flash:,}", "B", "-1", "B", "BROKEN"] in table
    assert ["ram", f"{ram:,}", "B", f"{ram:,}", "B", "0", "ok"] in table

    junit = ET.fromstring((out / "junit.xml").read_text())
    cases = {c.get("name"): c for c in junit.iter("testcase")}
    assert cases["flash"].find("failure") is not None and cases["ram"].find("failure") is None
    assert junit.get("failures") == "1"
    md = (out / "report.md").read_text()
    assert f"| flash | {flash - 1:,} B | {flash:,} B | -1 B | ❌ **broken** |" in md
    assert f"| ram | {ram:,} B | {ram:,} B | 0 | ✅ ok |" in md
    assert "### Change against the baseline" in md  # read before the build deleted it
    assert f"| flash | {flash:,} B | {flash:,} B | 0 | same |" in md
