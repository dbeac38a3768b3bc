"""The renderings of report.json (Markdown, JUnit, HTML) on real reports of digits builds.

The fixtures in tests/fixtures/reports/ are report.json files of real builds (make_fixtures.py):
``base`` (unicorn, with data, with a ``memory`` section), ``budgets`` (flash budget one byte
under what the firmware uses, RAM budget exactly at it), ``qemu`` (no cycles), ``host_only``
(``--emulator none``, no data) and ``pruned25``/``pruned50`` (variants). Expected numbers are
read from the fixtures, never written into the tests.
"""

from __future__ import annotations

import copy
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tinyprune.report import render, write_outputs
from tinyprune.report.checks import report_checks

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "reports"
NAMES = ("base", "budgets", "qemu", "host_only", "pruned25", "pruned50")


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def mismatching() -> dict[str, Any]:
    """base with one firmware output differing from the reference (as a real mismatch reads)."""
    r = load("base")
    r["run"]["bit_exact"] = False
    r["run"]["mismatches"] = [{"sample": 3, "input": "sample", "row": 3, "first_byte": 7,
                               "expected": "7f80", "actual": "7e80"}]
    r["ok"] = False
    return r


def old_report() -> dict[str, Any]:
    """base as an earlier tinyprune wrote it: no margins, no run.check, no host section, no
    stack reservation, no memory section."""
    r = load("budgets")
    for entry in r["budgets"].values():
        entry.pop("margin", None)
    r["run"].pop("check")
    r["run"].pop("host")
    r["firmware"].pop("stack_reserved_bytes")
    r.pop("memory", None)
    return r


def all_reports() -> list[tuple[str, dict[str, Any]]]:
    return [*((n, load(n)) for n in NAMES), ("mismatching", mismatching()),
            ("old", old_report())]


def tables(md: str) -> list[list[list[str]]]:
    """Every Markdown table: its rows (header first, the alignment row dropped) as cells."""
    out: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*md.splitlines(), ""]:
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                current.append(cells)
        elif current:
            out.append(current)
            current = []
    return out


def table_with(md: str, header: str) -> list[list[str]]:
    return next(t for t in tables(md) if t[0][0] == header)


# --- the fixtures are what the tests think they are -------------------------------------------

def test_fixtures_are_the_variants_described() -> None:
    base, budgets = load("base"), load("budgets")
    assert base["ok"] and base["run"]["cycles_per_inference"] and base["memory"]["timeline"]
    assert budgets["budgets"]["flash"]["limit"] == budgets["firmware"]["flash_used_bytes"] - 1
    assert budgets["budgets"]["ram"]["limit"] == budgets["firmware"]["ram_used_bytes"]
    assert not budgets["ok"]
    assert load("qemu")["run"]["cycles_per_inference"] is None
    host_only = load("host_only")
    assert host_only["run"]["bit_exact"] is None and host_only["run"]["check"] == "host-only"
    assert host_only["accuracy"]["firmware"] is None
    assert load("pruned50")["model"]["pruning"]["ratio"] > load("pruned25")["model"]["pruning"][
        "ratio"] > 0


# --- Markdown ---------------------------------------------------------------------------------

def test_markdown_budget_table_has_limit_actual_margin() -> None:
    r = load("budgets")
    md = render("report.md", r)
    rows = {row[0]: row for row in table_with(md, "budget")[1:]}
    flash, ram = r["firmware"]["flash_used_bytes"], r["firmware"]["ram_used_bytes"]
    assert rows["flash"][1:] == [f"{flash - 1:,} B", f"{flash:,} B", "-1 B", "❌ **broken**"]
    assert rows["ram"][1:] == [f"{ram:,} B", f"{ram:,} B", "0", "✅ ok"]
    assert rows["min_accuracy"][4] == "✅ ok" and rows["min_accuracy"][3].startswith("+")
    assert md.splitlines()[1].startswith("## ❌ tinyprune: digits_cnn.keras on nucleo_f746")
    assert "> **Failed:** budget flash: flash used" in md and "1 B over" in md


def test_markdown_tables_are_well_formed_for_every_report() -> None:
    for name, r in all_reports():
        md = render("report.md", r)
        assert md.startswith("<!-- tinyprune-report -->\n"), name
        for t in tables(md):
            assert len({len(row) for row in t}) == 1, (name, t[0])
        layers = table_with(md, "#")
        assert [row[1] for row in layers[1:]] == [x["name"] for x in r["layers"]], name
        checks = {row[0]: row[1] for row in table_with(md, "check")[1:]}
        assert len(checks) == 6, name


def test_markdown_says_what_did_not_run() -> None:
    host_only = render("report.md", load("host_only"))
    checks = {row[0]: row for row in table_with(host_only, "check")[1:]}
    assert checks["firmware bit-exact with TFLite Micro"][1] == "⚪ skipped"
    assert "--emulator none" in checks["firmware bit-exact with TFLite Micro"][2]
    assert checks["firmware accuracy equals the int8 reference"][1] == "⚪ skipped"
    assert "not measured (no --data)" in host_only
    qemu = render("report.md", load("qemu"))
    assert "not measured on qemu (no cycle counter)" in qemu
    layer_rows = table_with(qemu, "#")[1:]
    assert all(row[8] == "-" for row in layer_rows)


def test_markdown_change_against_a_baseline() -> None:
    new, old = load("pruned50"), load("base")
    md = render("report.md", new, baseline=old)
    rows = {row[0]: row for row in table_with(md, "figure")[1:] if len(row) == 5}
    d = new["firmware"]["flash_used_bytes"] - old["firmware"]["flash_used_bytes"]
    pct = 100 * d / old["firmware"]["flash_used_bytes"]
    assert d < 0  # pruning half the channels shrinks the firmware
    assert rows["flash"][1:] == [f"{old['firmware']['flash_used_bytes']:,} B",
                                 f"{new['firmware']['flash_used_bytes']:,} B",
                                 f"-{-d:,} B ({pct:+.1f}%)", "better"]
    dc = new["run"]["cycles_per_inference"] - old["run"]["cycles_per_inference"]
    assert rows["cycles per inference"][3].startswith(f"-{-dc:,} (")
    da = new["accuracy"]["firmware"] - old["accuracy"]["firmware"]
    assert rows["accuracy (firmware)"][3] == ("0" if da == 0 else
                                              f"{'+' if da > 0 else '-'}{100 * abs(da):.2f} pt")
    per_layer = table_with(md, "#")  # the first "#" table is the per-layer change
    assert per_layer[0] == ["#", "layer", "op", "baseline", "this build", "change"]
    for row, a, b in zip(per_layer[1:], old["layers"], new["layers"], strict=True):
        assert row[1] == b["name"] and row[3] == f"{a['cycles']:,}" and row[4] == f"{b['cycles']:,}"
        delta = b["cycles"] - a["cycles"]
        assert row[5].startswith("0" if delta == 0 else f"{delta:+,}")


def test_markdown_baseline_without_cycles_is_unknown_not_zero() -> None:
    md = render("report.md", load("qemu"), baseline=load("base"))
    rows = {row[0]: row for row in table_with(md, "figure")[1:] if len(row) == 5}
    assert rows["cycles per inference"][2:4] == ["-", "-"]


def test_markdown_escapes_cells() -> None:
    r = load("base")
    r["layers"][0]["name"] = "a|b<script>"
    md = render("report.md", r)
    layers = table_with(md, "#")
    assert layers[1][1] == "a\\|b&lt;script&gt;" and len(layers[1]) == len(layers[0])


def test_markdown_variants_table() -> None:
    variants = [(n, load(n)) for n in ("base", "pruned25", "pruned50")]
    md = render("report.md", variants[0][1], variants=variants)
    rows = table_with(md, "variant")[1:]
    assert [r[0] for r in rows] == ["base", "pruned25", "pruned50"]
    assert rows[2][1] == f"{100 * variants[2][1]['model']['pruning']['ratio']:.2f}%"


# --- JUnit ------------------------------------------------------------------------------------

# Jenkins' junit-10.xsd: the attributes each element may have (required ones marked) and the
# children it may hold.
ALLOWED = {
    "testsuites": ({"name", "time", "tests", "failures", "errors"}, set(), {"testsuite"}),
    "testsuite": ({"name", "tests", "failures", "errors", "group", "time", "skipped",
                   "timestamp", "hostname", "id", "package", "file", "log", "url"},
                  {"name", "tests", "failures", "errors"},
                  {"testsuite", "properties", "testcase", "system-out", "system-err"}),
    "properties": (set(), set(), {"property"}),
    "property": ({"name", "value"}, {"name", "value"}, set()),
    "testcase": ({"name", "time", "classname", "group"}, {"name"},
                 {"skipped", "error", "failure", "system-out", "system-err"}),
    "failure": ({"type", "message"}, set(), set()),
    "skipped": ({"type", "message"}, set(), set()),
    "system-out": (set(), set(), set()),
}
TIME = re.compile(r"(([0-9]{0,3},)*[0-9]{3}|[0-9]{0,3})*(\.[0-9]*)?")


def _check_schema(el: ET.Element) -> None:
    allowed, required, children = ALLOWED[el.tag]
    assert set(el.attrib) <= allowed and required <= set(el.attrib), el.tag
    if "time" in el.attrib:
        assert TIME.fullmatch(el.attrib["time"])
    for child in el:
        assert child.tag in children, (el.tag, child.tag)
        _check_schema(child)
    if el.tag == "testcase":
        assert sum(c.tag in ("failure", "skipped", "error") for c in el) <= 1


def test_junit_follows_the_schema_and_counts_add_up() -> None:
    for name, r in all_reports():
        root = ET.fromstring(render("junit.xml", r))
        assert root.tag == "testsuites", name
        _check_schema(root)
        suites = root.findall("testsuite")
        assert [s.get("name") for s in suites] == ["tinyprune.budgets", "tinyprune.checks"]
        for s in suites:
            cases = s.findall("testcase")
            assert int(s.get("tests", -1)) == len(cases)
            assert int(s.get("failures", -1)) == sum(c.find("failure") is not None
                                                     for c in cases)
            assert int(s.get("skipped", -1)) == sum(c.find("skipped") is not None
                                                    for c in cases)
        assert int(root.get("tests", -1)) == len(r.get("budgets", {})) + 6
        assert int(root.get("failures", -1)) == sum(int(s.get("failures", 0)) for s in suites)


def test_junit_failures_carry_the_numbers() -> None:
    r = load("budgets")
    root = ET.fromstring(render("junit.xml", r))
    cases = {c.get("name"): c for c in root.iter("testcase")}
    failure = cases["flash"].find("failure")
    assert failure is not None and failure.get("type") == "BudgetBroken"
    flash = r["firmware"]["flash_used_bytes"]
    assert f"{flash:,} B, limit {flash - 1:,} B: 1 B over" in str(failure.get("message"))
    assert cases["ram"].find("failure") is None
    assert "exactly at the limit" in str(cases["ram"].findtext("system-out"))
    wrong = ET.fromstring(render("junit.xml", mismatching()))
    fw = next(c for c in wrong.iter("testcase") if c.get("name") == "bit_exact.firmware")
    msg = str(fw.find("failure").get("message"))  # type: ignore[union-attr]
    assert "1 differ" in msg and "expected 7f80, got 7e80" in msg


def test_junit_skips_what_did_not_run() -> None:
    root = ET.fromstring(render("junit.xml", load("host_only")))
    skipped = {c.get("name"): c.find("skipped") for c in root.iter("testcase")}
    assert "--emulator none" in str(skipped["bit_exact.firmware"].get("message"))  # type: ignore[union-attr]
    assert skipped["accuracy"] is not None and skipped["bit_exact.host"] is None


def test_a_junit_reader_sees_the_same_failures_as_markdown_and_the_verdict() -> None:
    junitparser = pytest.importorskip("junitparser", reason="junitparser is a [dev] dependency")
    for name, r in all_reports():
        xml = junitparser.JUnitXml.fromstring(render("junit.xml", r))
        failed = {case.name for suite in xml for case in suite
                  if any(isinstance(res, junitparser.Failure) for res in case.result)}
        md = render("report.md", r)
        broken = {row[0] for row in (table_with(md, "budget")[1:] if r["budgets"] else [])
                  if "❌" in row[4]}
        titles = {c.title: c.name for c in report_checks(r)}
        broken |= {titles[row[0]] for row in table_with(md, "check")[1:] if "❌" in row[1]}
        assert failed == broken, name
        assert (not failed) == bool(r["ok"]), name


# --- HTML (static checks; tests/e2e/test_report_html.py renders it in Chromium) ------------------

def test_html_is_self_contained() -> None:
    for name, r in all_reports():
        html = render("report.html", r, baseline=load("base"))
        assert "Content-Security-Policy" in html and "default-src 'none'" in html
        assert "<script" not in html and "<link" not in html and " src=" not in html, name
        urls = set(re.findall(r"https?://[^\s\"'<>]+", html))
        assert urls <= {"http://www.w3.org/2000/svg"}, (name, urls)  # a namespace, never loaded


def _svgs(html: str) -> dict[str, ET.Element]:
    found = re.findall(r"<svg .*?</svg>", html, flags=re.S)
    out = {}
    for text in found:
        el = ET.fromstring(text)  # each chart is well-formed XML
        out[str(el.get("id"))] = el
    return out


SVG = "{http://www.w3.org/2000/svg}"


def test_html_plots_for_a_full_report() -> None:
    r = load("base")
    svgs = _svgs(render("report.html", r))
    assert set(svgs) == {"chart-memory", "chart-cycles", "chart-weights", "chart-arena",
                         "chart-buffers"}
    bars = svgs["chart-cycles"].findall(f"{SVG}rect")
    assert len(bars) == len(r["layers"])
    heights = [float(b.get("height", 0)) for b in bars]
    cycles = [x["cycles"] for x in r["layers"]]
    top = max(range(len(cycles)), key=cycles.__getitem__)
    assert max(heights) == heights[top]  # the tallest bar is the slowest layer
    for b, x in zip(bars, r["layers"], strict=True):
        assert f"{x['cycles']:,} cycles" in str(b.findtext(f"{SVG}title"))
    assert len(svgs["chart-buffers"].findall(f"{SVG}rect")) == len(r["memory"]["buffers"])
    arena = svgs["chart-arena"].findall(f"{SVG}rect")
    assert len(arena) == 2 * len(r["memory"]["timeline"])  # live bytes + scratch per op


def test_html_says_why_a_plot_is_missing() -> None:
    qemu = render("report.html", load("qemu"))
    assert "chart-cycles" not in qemu and "QEMU has no DWT cycle counter" in qemu
    assert "this report has no memory.timeline" in qemu
    host_only = render("report.html", load("host_only"))
    assert "no firmware was run (--emulator none)" in host_only
    assert "not measured (no --data)" in host_only


def test_html_variants_plot_accuracy_against_size() -> None:
    variants = [(n, load(n)) for n in ("pruned50", "base", "pruned25")]
    svgs = _svgs(render("report.html", variants[0][1], variants=variants))
    points = svgs["chart-variants"].findall(f"{SVG}circle")
    assert len(points) == 3
    by_label = {str(p.findtext(f"{SVG}title")).split(":")[0]: p for p in points}
    # larger flash -> further right; the first report given is highlighted
    xs = {n: float(by_label[n].get("cx", 0)) for n, _ in variants}
    flash = {n: r["firmware"]["flash_used_bytes"] for n, r in variants}
    assert sorted(xs, key=xs.__getitem__) == sorted(flash, key=flash.__getitem__)
    assert by_label["pruned50"].get("class") == "pt hi"
    one_with_accuracy = [variants[0], ("a", load("host_only")), ("b", load("host_only"))]
    assert "fewer than two of these reports have both accuracy" in render(
        "report.html", variants[0][1], variants=one_with_accuracy)


def test_renderings_are_deterministic_and_handle_every_report(tmp_path: Path) -> None:
    for name, r in all_reports():
        before = copy.deepcopy(r)
        for kind in ("report.md", "junit.xml", "report.html"):
            assert render(kind, r, baseline=load("base")) == render(kind, r,
                                                                    baseline=load("base"))
        assert r == before, name  # renderers never change the report
    out = tmp_path / "out"
    out.mkdir()
    paths = write_outputs(load("base"), out)
    assert [p.name for p in paths] == ["report.md", "report.html", "junit.xml", "report.json"]
    assert json.loads((out / "report.json").read_text()) == load("base")
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths)


@pytest.mark.parametrize(("vmax", "ticks"), [(603360, [0, 2e5, 4e5, 6e5, 8e5]),
                                             (9600, [0, 2e3, 4e3, 6e3, 8e3, 1e4]),
                                             (0, [0, 1]), (4.5, [0, 1, 2, 3, 4, 5])])
def test_axis_ticks_are_round_and_cover_the_data(vmax: float, ticks: list[float]) -> None:
    from tinyprune.report.charts import nice_ticks

    assert nice_ticks(vmax) == pytest.approx(ticks)


def test_axis_ranges_step_in_the_axis_unit() -> None:
    from tinyprune.report.charts import nice_range

    kib = nice_range(15492, 25292, 1024)
    assert kib[0] <= 15492 and kib[-1] >= 25292
    assert all((t / 1024 * 2) == int(t / 1024 * 2) for t in kib)  # whole or half KiB
    assert nice_range(0.6511, 0.9956, 0.01) == pytest.approx([0.6, 0.7, 0.8, 0.9, 1.0])


def test_a_failed_report_without_a_failed_check_still_reads_failed() -> None:
    r = load("base")
    r["ok"] = False  # e.g. a check this version does not know about failed
    md = render("report.md", r)
    assert md.splitlines()[1].startswith("## ❌")
    assert "> **Failed:** the report says ok: false" in md
    html = render("report.html", r)
    assert ">FAILED<" in html and "the report says ok: false" in html
