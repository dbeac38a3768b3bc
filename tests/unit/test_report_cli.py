"""`tinyprune report`: re-rendering old builds, baselines, variants, exit codes, refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tinyprune.cli import main
from tinyprune.report import render

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "reports"


def build_dir(tmp_path: Path, name: str) -> Path:
    """A folder holding the fixture as report.json, as a build leaves it."""
    out = tmp_path / name
    out.mkdir()
    shutil.copy(FIXTURES / f"{name}.json", out / "report.json")
    return out


def test_report_renders_each_file_as_the_build_would(tmp_path: Path, capsys) -> None:
    base = build_dir(tmp_path, "base")
    md, junit, html = tmp_path / "r.md", tmp_path / "j.xml", tmp_path / "r.html"
    assert main(["report", str(base), "--md", str(md), "--junit", str(junit),
                 "--html", str(html)]) == 0
    report = json.loads((base / "report.json").read_text())
    assert md.read_text() == render("report.md", report)
    assert junit.read_text() == render("junit.xml", report)
    assert html.read_text() == render("report.html", report)
    out = capsys.readouterr().out
    assert "result: OK" in out and f"wrote {md} (report.md)" in out


def test_report_with_a_baseline_and_markdown_to_stdout(tmp_path: Path, capsys) -> None:
    new, old = build_dir(tmp_path, "pruned50"), build_dir(tmp_path, "base")
    assert main(["report", str(new / "report.json"), "--baseline", str(old), "--md", "-"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("<!-- tinyprune-report -->") and "result:" not in out
    assert "### Change against the baseline" in out


def test_report_several_variants_into_one_html(tmp_path: Path, capsys) -> None:
    dirs = [build_dir(tmp_path, n) for n in ("base", "pruned25", "pruned50")]
    html = tmp_path / "variants.html"
    assert main(["report", *map(str, dirs), "--html", str(html)]) == 0
    text = html.read_text()
    assert 'id="chart-variants"' in text and text.count('<circle class="pt') == 3
    for name in ("base", "pruned25", "pruned50"):
        assert f">{name}</td>" in text


def test_report_exit_1_names_the_broken_budget(tmp_path: Path, capsys) -> None:
    broken = build_dir(tmp_path, "budgets")
    junit = tmp_path / "j.xml"
    assert main(["report", str(broken), "--junit", str(junit)]) == 1
    captured = capsys.readouterr()
    assert "tinyprune: check failed: budgets: budget flash: flash used" in captured.err
    assert "1 B over" in captured.err
    assert "BROKEN" in captured.out and '<failure message="budget flash' in junit.read_text()


def test_report_refuses_to_replace_a_file_unless_forced(tmp_path: Path, capsys) -> None:
    base = build_dir(tmp_path, "base")
    md, html = tmp_path / "r.md", tmp_path / "r.html"
    md.write_text("mine")
    assert main(["report", str(base), "--html", str(html), "--md", str(md)]) == 2
    err = capsys.readouterr().err
    assert f"--out {md} exists; pass --force" in err and len(err.strip().splitlines()) == 1
    assert md.read_text() == "mine" and not html.exists()  # nothing half-written
    assert main(["report", str(base), "--md", str(md), "--force"]) == 0
    assert md.read_text().startswith("<!-- tinyprune-report -->")


@pytest.mark.parametrize(("content", "needle"), [
    ("{not json", "not a tinyprune report (JSONDecodeError"),
    ('{"board": {}}', "missing model, firmware, run"),
    ('{"schema_version": 99, "board": {}, "model": {}, "firmware": {}, "run": {}}',
     "schema_version 99 is not one this tinyprune reads"),
    ("[1, 2]", "not a tinyprune report"),
])
def test_report_bad_files_exit_2_with_one_line(tmp_path: Path, capsys, content: str,
                                               needle: str) -> None:
    path = tmp_path / "report.json"
    path.write_text(content)
    assert main(["report", str(path), "--md", str(tmp_path / "x.md")]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and str(path) in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.md").exists()


def test_report_bad_baseline_and_two_stdout_renderings(tmp_path: Path, capsys) -> None:
    base = build_dir(tmp_path, "base")
    assert main(["report", str(base), "--baseline", str(tmp_path / "none")]) == 2
    assert "no report.json" in capsys.readouterr().err
    assert main(["report", str(base), "--md", "-", "--junit", "-"]) == 2
    assert "only one rendering can go to stdout" in capsys.readouterr().err


def test_build_refuses_a_missing_baseline_before_any_work(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    rc = main(["check", "--board", "nucleo_f746", "--model", str(tmp_path / "m.keras"),
               "--out", str(out), "--baseline", str(tmp_path / "old" / "report.json")])
    assert rc == 2 and "old/report.json: no report.json" in capsys.readouterr().err
    assert not out.exists()
