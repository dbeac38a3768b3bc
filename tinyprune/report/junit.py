"""``junit.xml``: the report's budgets and checks as JUnit test cases, for CI test tabs.

The layout is the one Jenkins' JUnit schema (junit-10.xsd), GitLab, and the GitHub Actions test
reporters read: ``<testsuites>`` holding two ``<testsuite>`` (``tinyprune.budgets`` and
``tinyprune.checks``), one ``<testcase>`` per budget and per check. A broken budget or a failed
check is a ``<failure>`` whose message carries the numbers; a check that did not apply is
``<skipped>`` with the reason. No timestamps or host names: the same report renders the same
bytes.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from tinyprune.report.checks import BUDGETS, CHECKS, FAILED, SKIPPED, Check, report_checks

SUITES = {BUDGETS: "tinyprune.budgets", CHECKS: "tinyprune.checks"}
FAILURE_TYPE = {BUDGETS: "BudgetBroken", CHECKS: "CheckFailed"}


def _counts(checks: list[Check]) -> dict[str, str]:
    return {"tests": str(len(checks)), "failures": str(sum(c.failed for c in checks)),
            "errors": "0"}


def _properties(report: dict[str, Any]) -> ET.Element:
    props = ET.Element("properties")
    board, model = report.get("board") or {}, report.get("model") or {}
    firmware, run = report.get("firmware") or {}, report.get("run") or {}
    for name, value in (("board", board.get("name")), ("model", model.get("source")),
                        ("tinyprune_version", report.get("tinyprune_version")),
                        ("emulator", run.get("emulator")),
                        ("elf_sha256", firmware.get("elf_sha256"))):
        if value is not None:
            ET.SubElement(props, "property", name=name, value=str(value))
    return props


def _testcase(check: Check) -> ET.Element:
    case = ET.Element("testcase", classname=SUITES[check.group], name=check.name, time="0")
    if check.status == FAILED:
        failure = ET.SubElement(case, "failure", message=f"{check.title}: {check.message}",
                                type=FAILURE_TYPE[check.group])
        failure.text = f"{check.title}: {check.message}"
    elif check.status == SKIPPED:
        ET.SubElement(case, "skipped", message=check.message)
    else:
        ET.SubElement(case, "system-out").text = check.message
    return case


def render_junit(report: dict[str, Any]) -> str:
    """The JUnit XML of ``report`` (UTF-8, with the XML declaration)."""
    checks = report_checks(report)
    root = ET.Element("testsuites", {"name": "tinyprune", "time": "0", **_counts(checks)})
    for group, suite_name in SUITES.items():
        members = [c for c in checks if c.group == group]
        skipped = str(sum(c.status == SKIPPED for c in members))
        suite = ET.SubElement(root, "testsuite", {"name": suite_name, "time": "0",
                                                  "skipped": skipped, **_counts(members)})
        if group == CHECKS:
            suite.append(_properties(report))
        suite.extend(_testcase(c) for c in members)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") \
        + "\n"
