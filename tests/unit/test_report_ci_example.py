"""The CI example (examples/ci/, docs/ci.md): the workflow parses, docs/ci.md shows the same
file, and every tinyprune command in it is one this CLI accepts, on files that exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from tinyprune.cli import make_parser
from tinyprune.config import load_project_file
from tinyprune.outputs import REPORTS

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "examples" / "ci" / "firmware.yml"
OUT = "build/firmware"

yaml = pytest.importorskip("yaml", reason="PyYAML is a [dev] dependency")


def workflow() -> dict[str, Any]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(doc, dict)
    return doc


def steps() -> list[dict[str, Any]]:
    return list(workflow()["jobs"]["firmware"]["steps"])


def _commands(script: str) -> list[list[str]]:
    """The tinyprune command lines of a step's script, with shell expansions dropped."""
    out = []
    for line in script.splitlines():
        line = line.split(" #")[0].strip()
        if line.startswith("tinyprune "):
            out.append([t for t in shlex.split(line)[1:] if not t.startswith("$")])
    return out


def test_docs_show_the_example_workflow_verbatim() -> None:
    doc = (ROOT / "docs" / "ci.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, flags=re.S)
    assert WORKFLOW.read_text() in blocks


def test_workflow_runs_on_pull_requests_and_may_comment() -> None:
    doc = workflow()
    triggers = doc[True] if True in doc else doc["on"]  # YAML 1.1 reads `on:` as true
    assert "pull_request" in triggers
    assert doc["permissions"]["pull-requests"] == "write"


def test_workflow_installs_what_the_build_needs() -> None:
    install = "\n".join(s.get("run", "") for s in steps())
    setup = (ROOT / "scripts" / "setup_system.sh").read_text()
    for package in ("gcc-arm-none-eabi", "libnewlib-arm-none-eabi", "qemu-system-arm"):
        assert package in install and package in setup
    assert "pip install" in install


def test_workflow_gates_with_tinyprune_check_on_real_files() -> None:
    commands = [c for s in steps() for c in _commands(s.get("run", ""))]
    assert [c[0] for c in commands] == ["check"]
    args = make_parser().parse_args(commands[0])
    assert args.out == Path(OUT) and args.config is not None
    config = load_project_file(ROOT / args.config)
    assert config["model"].is_file() and config["data"].is_file()
    budgets = config["budgets"]
    assert budgets.flash and budgets.ram and budgets.min_accuracy
    gate = next(s for s in steps() if "tinyprune check" in s.get("run", ""))
    assert "--baseline baseline/report.json" in gate["run"] and "if" not in gate


def test_workflow_publishes_the_reports_even_when_the_gate_fails() -> None:
    by_name = {s.get("name", s.get("uses")): s for s in steps()}
    upload = by_name["Upload the reports"]
    assert upload["uses"].startswith("actions/upload-artifact@")
    assert "!cancelled()" in upload["if"]
    paths = upload["with"]["path"].split()
    assert f"{OUT}/report.html" in paths
    assert {f"{OUT}/{name}" for name in REPORTS} == set(paths)
    comment = by_name["Comment on the pull request"]
    assert "!cancelled()" in comment["if"] and "pull_request" in comment["if"]
    script = comment["with"]["script"]
    assert f"'{OUT}/report.md'" in script and "<!-- tinyprune-report -->" in script
    summary = by_name["Job summary"]
    assert f"{OUT}/report.md" in summary["run"] and "GITHUB_STEP_SUMMARY" in summary["run"]


def test_the_comment_marker_is_the_first_line_of_report_md() -> None:
    from tinyprune.report.markdown import MARKER

    script = next(s for s in steps() if s.get("name") == "Comment on the pull request")
    assert f"const marker = '{MARKER}';" in script["with"]["script"]


def test_the_baseline_is_saved_on_main_and_restored_on_pull_requests() -> None:
    uses = {s.get("uses", "").split("@")[0]: s for s in steps() if "uses" in s}
    restore, save = uses["actions/cache/restore"], uses["actions/cache/save"]
    assert restore["with"]["path"] == save["with"]["path"] == "baseline"
    assert save["with"]["key"].startswith(restore["with"]["restore-keys"])
    keep = next(s for s in steps() if "cp build/firmware/report.json" in s.get("run", ""))
    assert "baseline/report.json" in keep["run"] and keep["if"] == save["if"]
