"""The wheel carries runtime/, templates/ and boards/: a build works from an installed wheel.

The wheel is installed into a fresh virtual environment that borrows the already-installed
dependencies (TensorFlow and friends) through a .pth file, so the test takes seconds; tinyprune
itself comes only from the wheel, and the build runs outside the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                       reason="arm-none-eabi-gcc not installed (make setup installs it)"),
]


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)


def test_wheel_builds_firmware_outside_the_repo(tmp_path: Path) -> None:
    src = tmp_path / "src"  # build from a copy: a wheel build writes build/ and egg-info
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache"))
    dist = tmp_path / "dist"
    proc = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                 "-q", "-w", str(dist), str(src)])
    assert proc.returncode == 0, proc.stderr
    wheel = next(dist.glob("tinyprune-*.whl"))

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    purelib = _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    deps = [p for p in site.getsitepackages() if "site-packages" in p]
    (Path(purelib.stdout.strip()) / "borrowed_deps.pth").write_text("\n".join(deps) + "\n")
    proc = _run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)])
    assert proc.returncode == 0, proc.stderr

    work = tmp_path / "elsewhere"
    work.mkdir()
    model = work / "digits.keras"
    shutil.copy(ROOT / "examples" / "digits" / "digits_cnn.keras", model)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = _run([str(env_dir / "bin" / "tinyprune"), "--version"], cwd=work, env=env)
    assert where.returncode == 0 and "tinyprune" in where.stdout
    located = _run([str(py), "-c", "import tinyprune.firmware.paths as p; print(p.data_dir())"],
                   cwd=work, env=env)
    assert "_data" in located.stdout and str(ROOT) not in located.stdout, located.stdout
    proc = _run([str(env_dir / "bin" / "tinyprune"), "build", "--board", "nucleo_f746",
                 "--model", "digits.keras", "--samples", "2"], cwd=work, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((work / "build" / "digits-nucleo_f746" / "report.json").read_text())
    assert report["ok"] and report["run"]["bit_exact"]
    assert sorted(p.name for p in work.iterdir()) == ["build", "digits.keras"]
