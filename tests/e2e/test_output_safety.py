"""Never lose a user's file: the real CLI against user folders, links, a read-only folder, a full
disk, and runs killed (SIGKILL, SIGINT, SIGTERM) at several stages; and quiet Keras builds.

Most builds use an int8 .tflite of the digits CNN with ``--emulator none`` and a few random
inputs, so no TensorFlow import and no emulation is paid where they are not the point.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyprune.cli import main
from tinyprune.outputs import MANIFEST, STAGING

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "digits"
FAST = ["--board", "nucleo_f746", "--samples", "2", "--random-samples", "20",
        "--emulator", "none"]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                       reason="arm-none-eabi-gcc not installed (make setup installs it)"),
]


def tree(root: Path) -> dict[str, str]:
    """Every file and link under ``root`` with its content (links as ->target)."""
    out = {}
    for here, dirs, files in os.walk(root):
        for name in files + [d for d in dirs if Path(here, d).is_symlink()]:
            p = Path(here, name)
            out[p.relative_to(root).as_posix()] = \
                f"->{os.readlink(p)}" if p.is_symlink() else p.read_bytes().hex()[:64]
    return out


def cli_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def cli(*args: str, env: dict[str, str] | None = None,
        timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tinyprune.cli", *args], capture_output=True,
                          text=True, env=env or cli_env(), timeout=timeout, check=False)


def one_error(err: str) -> str:
    """The single ``tinyprune:`` line of a failed run's stderr (and no traceback)."""
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("tinyprune: ")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def digits_tflite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits CNN as int8 .tflite, made by ``tinyprune quantize`` (a single-file output)."""
    path = tmp_path_factory.mktemp("model") / "digits_int8.tflite"
    assert main(["quantize", "--model", str(DIGITS / "digits_cnn.keras"), "--data",
                 str(DIGITS / "digits.npz"), "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, digits_tflite: Path) -> Path:
    """A completed host-only build, copied by the tests that need an earlier build."""
    out = tmp_path_factory.mktemp("built") / "out"
    assert main(["build", "--model", str(digits_tflite), "--out", str(out), *FAST]) == 0
    return out


def copy_of(built: Path, dest: Path) -> Path:
    shutil.copytree(built, dest, symlinks=True)
    return dest


def test_single_file_outputs(digits_tflite: Path, tmp_path: Path, capsys) -> None:
    # quantize again onto the same file: refused without --force, replaced with it
    assert main(["quantize", "--model", str(DIGITS / "digits_cnn.keras"), "--out",
                 str(digits_tflite)]) == 2
    assert "exists; pass --force" in one_error(capsys.readouterr().err)
    missing = tmp_path / "sub" / "x.keras"  # refused before any pruning work
    assert main(["prune", "--model", str(DIGITS / "digits_cnn.keras"), "--out",
                 str(missing)]) == 2
    assert f"folder {missing.parent} does not exist" in one_error(capsys.readouterr().err)
    assert not missing.parent.exists()


def test_host_only_build_says_so(built: Path, capsys) -> None:
    report = json.loads((built / "report.json").read_text())
    run = report["run"]
    assert run["check"] == "host-only" and run["bit_exact"] is None and run["samples"] == 0
    assert run["host"]["bit_exact"] and run["host"]["random_samples"] == 20
    assert run["host"]["samples"] == 2 and report["ok"]
    assert main(["report", str(built)]) == 0
    text = capsys.readouterr().out
    assert "bit-exact on the host build only: True" in text and "no firmware was run" in text
    assert "on none" not in text and "bit-exact True" not in text


def _user_project(root: Path) -> dict[str, str]:
    for rel, text in {"src/main.c": "int main(void) { return 0; }\n",
                      "src/my_code.c": "/* mine */\n", "firmware/my_bootloader.bin": "\x7fBOOT",
                      "model_int8.tflite": "mine", "report.md": "# my notes\n"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return tree(root)


@pytest.mark.parametrize("force", [False, True])
def test_a_users_folder_is_refused_and_untouched(digits_tflite: Path, tmp_path: Path, capsys,
                                                 force: bool) -> None:
    out = tmp_path / "project"
    before = _user_project(out)
    rc = main(["build", "--model", str(digits_tflite), "--out", str(out), *FAST,
               *(["--force"] if force else [])])
    err = one_error(capsys.readouterr().err)
    assert rc == 2
    if force:  # the names tinyprune writes are the user's: still refused, naming one
        assert "exists and was not written by tinyprune" in err
        assert any(f"{out / name} exists" in err for name in ("model_int8.tflite", "report.md"))
    else:
        assert "not empty and was not created by tinyprune" in err and "--force" in err
        assert str(out / "firmware" / "my_bootloader.bin") in err
    assert tree(out) == before


def test_out_dot_in_a_project_folder(digits_tflite: Path, tmp_path: Path, capsys,
                                     monkeypatch) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "tinyprune.toml").write_text(f'model = "{digits_tflite}"\nboard = "nucleo_f746"\n'
                                            'emulator = "none"\nsamples = 2\n')
    before = _user_project(project)
    monkeypatch.chdir(project)
    for extra, needle in (([], "not empty and was not created by tinyprune"),
                          (["--force"], "exists and was not written by tinyprune")):
        assert main(["build", "--out", ".", *extra]) == 2
        assert needle in one_error(capsys.readouterr().err)
        assert tree(project) == before


def test_failed_rebuild_leaves_nothing_that_looks_built(built: Path, digits_tflite: Path,
                                                        tmp_path: Path, capsys) -> None:
    out = copy_of(built, tmp_path / "out")
    (out / "notes.txt").write_text("mine")
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((5, 9, 9, 1), np.float32), y=np.zeros(5, np.int64))
    assert main(["build", "--model", str(digits_tflite), "--data", str(bad), "--out", str(out),
                 *FAST]) == 2
    assert "(9, 9, 1)" in one_error(capsys.readouterr().err)
    assert sorted(os.listdir(out)) == ["notes.txt"]  # no old src/, firmware/ or report
    assert main(["report", str(out)]) == 2


@pytest.mark.parametrize("link", ["firmware", STAGING])
def test_a_link_inside_out_is_not_followed(built: Path, digits_tflite: Path, tmp_path: Path,
                                           capsys, link: str) -> None:
    out = copy_of(built, tmp_path / "out")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.bin").write_text("user's")
    shutil.rmtree(out / link, ignore_errors=True)
    (out / link).symlink_to(outside)
    assert main(["build", "--model", str(digits_tflite), "--out", str(out), *FAST]) == 2
    assert f"{out / link} is a symbolic link" in one_error(capsys.readouterr().err)
    assert tree(outside) == {"precious.bin": "757365722773"}  # "user's", untouched
    assert not (out / "report.json").exists()  # the failed run leaves no success behind
    assert main(["report", str(out)]) == 2


@pytest.mark.parametrize(("case", "needle"), [
    ("dangling link", "which does not exist"),
    ("a file", "exists and is not a folder"),
])
def test_odd_out_paths(digits_tflite: Path, tmp_path: Path, capsys, case: str,
                       needle: str) -> None:
    out = tmp_path / "out"
    if case == "dangling link":
        out.symlink_to(tmp_path / "gone")
    else:
        out.write_text("x")
    assert main(["build", "--model", str(digits_tflite), "--out", str(out), *FAST]) == 2
    assert needle in one_error(capsys.readouterr().err)
    assert not (tmp_path / "gone").exists()


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=16k tmpfs /mnt"],
                           capture_output=True, check=False)
    return probe.returncode == 0


needs_mounts = pytest.mark.skipif(not _unshare_works(), reason="needs 'unshare -rm' to mount a "
                                  "private tmpfs (user namespaces disabled on this machine)")


def in_tmpfs(size: str, mount: Path, setup: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Runs the CLI in a private mount namespace with a ``size`` tmpfs at ``mount``, then lists
    what the tmpfs holds on stdout (after a ``---`` line)."""
    cmd = " ".join(f"'{a}'" for a in (sys.executable, "-m", "tinyprune.cli", *args))
    script = (f"mount -t tmpfs -o size={size} tmpfs '{mount}' && {setup} && {cmd}; rc=$?; "
              f"echo ---; ls -A '{mount}'; exit $rc")
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True,
                          env=cli_env(), timeout=600, check=False)


@needs_mounts
def test_read_only_out(built: Path, digits_tflite: Path, tmp_path: Path) -> None:
    mount = tmp_path / "mnt"
    mount.mkdir()
    setup = f"cp -a '{built}' '{mount}/out' && mount -o remount,ro '{mount}'"
    proc = in_tmpfs("2m", mount, setup, "build", "--model", str(digits_tflite), "--out",
                    str(mount / "out"), *FAST)
    assert proc.returncode == 2, proc.stderr
    assert f"cannot write in {mount / 'out'}: read-only file system" in one_error(proc.stderr)


@needs_mounts
@pytest.mark.parametrize("size", ["40k", "100k"])  # full in Python's writes / in the compiler
def test_disk_full_is_one_line_naming_the_folder(digits_tflite: Path, tmp_path: Path,
                                                 size: str) -> None:
    mount = tmp_path / "mnt"
    mount.mkdir()
    out = mount / "out"
    proc = in_tmpfs(size, mount, "true", "build", "--model", str(digits_tflite), "--out",
                    str(out), *FAST)
    assert proc.returncode == 2, proc.stderr
    err = one_error(proc.stderr)
    assert f"no space left on device in {out}" in err and "free some space" in err
    assert proc.stdout.split("---")[-1].strip() == ""  # nothing left on the full disk


def _run_until(args: list[str], line: str, sig: signal.Signals) -> tuple[int, list[str]]:
    """Starts the CLI, sends ``sig`` when stderr shows ``line``; returns exit code and stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "tinyprune.cli", *args], env=cli_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = []
    for text in proc.stderr:
        seen.append(text.rstrip("\n"))
        if text.startswith(line):
            proc.send_signal(sig)
            break
    seen += proc.stderr.read().splitlines()
    rc = proc.wait(timeout=300)
    assert any(s.startswith(line) for s in seen), seen
    return rc, seen


KILLS = [("[6/10] codegen", signal.SIGKILL), ("[7/10] verify on host", signal.SIGINT),
         ("[8/10] build firmware", signal.SIGTERM), ("[9/10] run on emulator", signal.SIGINT)]


def test_killed_builds_leave_no_report_and_a_rerun_works(built: Path, digits_tflite: Path,
                                                         tmp_path: Path) -> None:
    out = copy_of(built, tmp_path / "out")  # an earlier build, with its ok report
    args = ["build", "--model", str(digits_tflite), "--out", str(out), "--board", "nucleo_f746",
            "--samples", "24", "--random-samples", "20"]
    for line, sig in KILLS:
        rc, err = _run_until(args, line, sig)
        assert not (out / "report.json").exists(), (line, sig)
        left = set(os.listdir(out)) if out.exists() else set()  # tinyprune made it: may go
        assert left <= {MANIFEST, STAGING}, (line, sig, left)
        if sig == signal.SIGKILL:
            assert rc == -signal.SIGKILL
            continue
        assert "Traceback" not in "\n".join(err)
        last = [ln for ln in err if not ln.startswith(("[", "      "))]
        expected = "tinyprune: interrupted" if sig == signal.SIGINT else \
            "tinyprune: stopped by SIGTERM"
        assert last == [expected], err
        assert rc == 128 + sig
    final = cli(*args)
    assert final.returncode == 0, final.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["ok"] and report["run"]["bit_exact"] and report["run"]["check"] == "firmware"
    assert report["run"]["samples"] == 24 and report["run"]["random_samples"] == 6
    assert report["run"]["host"]["random_samples"] == 20
    assert not (out / STAGING).exists()


def test_keras_build_is_quiet_and_leaves_home_alone(tmp_path: Path) -> None:
    """No TensorFlow/absl/CUDA log lines, no progress-bar redraws in a log, no ~/.keras; and a
    Keras build without --data says what that means."""
    home = tmp_path / "home"
    home.mkdir()
    env = cli_env(HOME=str(home))
    env.pop("KERAS_HOME", None)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    out = tmp_path / "out"
    proc = cli("build", "--model", str(DIGITS / "digits_cnn.keras"), "--prune-channels", "0.5",
               "--out", str(out), *FAST, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr
    others = [ln for ln in proc.stderr.splitlines() if not ln.startswith(("[", "      "))]
    assert others == ["WARNING: no --data: calibration used seeded random inputs, nothing was "
                      "fine-tuned and no accuracy is measured; pass --data for an int8 model "
                      "calibrated on real inputs"], proc.stderr
    assert list(home.iterdir()) == []
    assert "warning   no --data" in proc.stdout and "result: OK" in proc.stdout
    assert json.loads((out / "report.json").read_text())["warnings"] == [others[0][9:]]
