"""`tinyprune export`: each library format drops into a minimal user project that the cross
compiler builds (real cmake and make; Arduino: the library spec's layout, its sources and the
example sketch compiled with the Nano 33 BLE's flags), and the library computes what the
TFLite Micro reference computes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tinyprune.cli import main

ROOT = Path(__file__).resolve().parents[2]
KWS = ROOT / "tests" / "fixtures" / "mlperf_tiny" / "kws_ref_model.tflite"
NAME = "kws_ref_model"
M7 = ("-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard")
NANO33BLE = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
WARN = ("-Wall", "-Wextra", "-Werror")
LINK = ("--specs=nano.specs", "--specs=nosys.specs")


def _used_kernels() -> set[str]:
    """The kernel files the planner picks for the model on the M7 (what the export must hold)."""
    from tinyprune.firmware.paths import runtime_dir
    from tinyprune.ir import read_tflite
    from tinyprune.plan import plan

    planned = plan(read_tflite(KWS.read_bytes()), dsp=True)
    used = {src for p in planned.code_ops for src in p.call.sources}
    assert used < {p.name for p in (runtime_dir() / "kernels").glob("*.c")}  # a strict subset
    return used


KERNELS = _used_kernels()

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                       reason="arm-none-eabi-gcc not installed (make setup installs it)"),
]


def export(fmt: str, out: Path, *extra: str) -> Path:
    assert main(["export", "--format", fmt, "--model", str(KWS), "--board", "nucleo_f746",
                 "--out", str(out), *extra]) == 0
    return out


def sh(*cmd: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))}\n{result.stdout}{result.stderr}"
    return result.stdout


def readme_call(lib: Path) -> str:
    """The README's 'three lines to call it', as they are written there."""
    block = re.search(r"```c\n(.*?)```", (lib / "README.md").read_text(), re.S)
    assert block is not None
    lines = block.group(1).strip().splitlines()
    assert len(lines) == 3 and lines[0] == f'#include "{NAME}.h"'
    return block.group(1)


def user_main(lib: Path) -> str:
    """A user's main.c built around the README's three lines."""
    include, declare, call = readme_call(lib).strip().splitlines()
    return f"""{include}
#include <stdint.h>
{declare}
volatile int result;
int main(void)
{{
    input[0] = (int8_t){NAME.upper()}_INPUT_ZERO_POINT;
    {call}
    result = status + output[0];
    for (;;) {{
    }}
}}
"""


def defined_symbols(elf: Path) -> set[str]:
    return {line.split()[-1] for line in sh("arm-none-eabi-nm", elf).splitlines()
            if len(line.split()) == 3}


def check_tree(lib: Path) -> None:
    assert {p.name for p in (lib / "runtime" / "kernels").iterdir()} == KERNELS
    assert (lib / "include" / f"{NAME}.h").is_file() and (lib / "src" / "model.c").is_file()
    assert not (lib / "src" / "host_main.c").exists() and not (lib / "src" / "samples.c").exists()


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not installed")
def test_cmake_export_builds_in_a_user_project(tmp_path: Path) -> None:
    lib = export("cmake", tmp_path / "lib")
    check_tree(lib)
    user = tmp_path / "user"
    user.mkdir()
    (user / "main.c").write_text(user_main(lib))
    (user / "CMakeLists.txt").write_text(f"""cmake_minimum_required(VERSION 3.13)
project(user_firmware C)
add_subdirectory({lib.as_posix()} kws)
add_executable(app.elf main.c)
target_compile_options(app.elf PRIVATE {' '.join(WARN)})
target_link_libraries(app.elf PRIVATE tinyprune::{NAME})
""")
    (user / "arm.cmake").write_text(f"""set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(CMAKE_C_FLAGS_INIT "{' '.join(M7)} -O2 -ffunction-sections -fdata-sections")
set(CMAKE_EXE_LINKER_FLAGS_INIT "{' '.join(LINK)} -Wl,--gc-sections")
""")
    build = tmp_path / "build"
    sh("cmake", "-S", user, "-B", build, f"-DCMAKE_TOOLCHAIN_FILE={user / 'arm.cmake'}")
    sh("cmake", "--build", build)
    assert {"tp_model_invoke", "tp_timer_now", "tp_conv_interleaved_s8"} <= \
        defined_symbols(build / "app.elf")
    members = set(sh("arm-none-eabi-ar", "t", build / "kws" / f"lib{NAME}.a").split())
    assert {m.removesuffix(".c.obj").removesuffix(".obj") for m in members} == \
        {k.removesuffix(".c") for k in KERNELS} | {NAME, "model", "weights"}


def test_make_export_builds_in_a_user_project(tmp_path: Path) -> None:
    lib = export("make", tmp_path / "lib")
    check_tree(lib)
    user = tmp_path / "user"
    user.mkdir()
    (user / "main.c").write_text(user_main(lib))
    macro = NAME.upper()
    (user / "Makefile").write_text(f"""CC := arm-none-eabi-gcc
AR := arm-none-eabi-ar
CFLAGS := {' '.join(M7)} -O2 {' '.join(WARN)}
include {lib.as_posix()}/{NAME}.mk
CFLAGS += $({macro}_CFLAGS)

app.elf: main.o $({macro}_LIB)
\t$(CC) $(CFLAGS) {' '.join(LINK)} $^ -o $@
""")
    sh("make", "-C", user, "--no-print-directory")
    assert (user / "build" / NAME / f"lib{NAME}.a").is_file()
    assert "tp_model_invoke" in defined_symbols(user / "app.elf")


def test_make_export_computes_the_reference_outputs(tmp_path: Path) -> None:
    """The library, built with the host compiler from its Makefile fragment, runs inputs and
    gives the TFLite Micro reference's bytes."""
    from tinyprune import verify
    from tinyprune.ir import read_tflite

    lib = export("make", tmp_path / "lib", "--name", "kws")
    user = tmp_path / "host"
    user.mkdir()
    (user / "main.c").write_text("""#include <stdio.h>
#include "kws.h"
int main(void)
{
    static unsigned char in[KWS_INPUT_BYTES], out[KWS_OUTPUT_BYTES];
    while (fread(in, 1, sizeof in, stdin) == sizeof in) {
        if (kws_invoke(in, out) != 0 || fwrite(out, 1, sizeof out, stdout) != sizeof out) {
            return 1;
        }
    }
    return 0;
}
""")
    (user / "Makefile").write_text(f"""CFLAGS := -O1 {' '.join(WARN)}
include {lib.as_posix()}/kws.mk
CFLAGS += $(KWS_CFLAGS)
app: main.o $(KWS_LIB)
\t$(CC) $^ -o $@
""")
    sh("make", "-C", user, "--no-print-directory")
    graph = read_tflite(KWS.read_bytes())
    inputs = verify.random_inputs(graph, 4, seed=3)
    run = subprocess.run([user / "app"], input=inputs.tobytes(), capture_output=True,
                         check=True)
    expected = verify.reference_outputs(KWS.read_bytes(), graph, inputs)
    assert run.stdout == expected.tobytes()


ARDUINO_H = """#pragma once
#include <stdint.h>
class SerialStub {
public:
    void begin(unsigned long) {}
    void print(const char *) {}
    void print(char) {}
    void print(int) {}
    void print(unsigned long) {}
    void println() {}
};
extern SerialStub Serial;
unsigned long micros(void);
void delay(unsigned long);
"""
CORE_CPP = """#include "Arduino.h"
SerialStub Serial;
unsigned long micros(void) { return 0; }
void delay(unsigned long) {}
void setup();
void loop();
int main() { setup(); loop(); return 0; }
"""
LIBRARY_FIELDS = ("name", "version", "author", "maintainer", "sentence", "paragraph", "category",
                  "url", "architectures")
CATEGORIES = ("Display", "Communication", "Signal Input/Output", "Sensors", "Device Control",
              "Timing", "Data Storage", "Data Processing", "Other")


def test_arduino_export_has_the_library_layout_and_compiles_for_the_nano_33_ble(
        tmp_path: Path) -> None:
    lib = export("arduino", tmp_path / NAME)
    props = dict(line.split("=", 1) for line in
                 (lib / "library.properties").read_text().splitlines() if line)
    assert set(LIBRARY_FIELDS) <= set(props)
    assert props["name"] == NAME and props["category"] in CATEGORIES
    assert re.fullmatch(r"\d+\.\d+\.\d+", props["version"]) and props["includes"] == f"{NAME}.h"
    top = {p.name for p in lib.iterdir() if not p.name.startswith(".")}
    assert top == {"library.properties", "README.md", "src", "examples"}
    assert all(p.is_file() for p in (lib / "src").iterdir())  # flat: src/ is the include path
    sources = sorted((lib / "src").glob("*.c"))
    assert {p.name for p in sources} == KERNELS | {f"{NAME}.c", "model.c", "weights.c"}
    examples = list((lib / "examples").iterdir())
    assert len(examples) == 1 and (examples[0] / f"{examples[0].name}.ino").is_file()
    objects = tmp_path / "obj"
    objects.mkdir()
    for src in sources:  # the Arduino IDE compiles a library's .c files as gnu11
        sh("arm-none-eabi-gcc", *NANO33BLE, "-Os", "-std=gnu11", *WARN, "-I", lib / "src",
           "-c", src, "-o", objects / f"{src.stem}.o")
    core = tmp_path / "core"
    core.mkdir()
    (core / "Arduino.h").write_text(ARDUINO_H)
    (core / "core.cpp").write_text(CORE_CPP)
    sketch = examples[0] / f"{examples[0].name}.ino"
    cxx = ("arm-none-eabi-g++", *NANO33BLE, "-Os", "-std=gnu++17", "-fno-exceptions",
           "-fno-rtti", *WARN, "-I", core, "-I", lib / "src")
    sh(*cxx, "-x", "c++", "-include", "Arduino.h", "-c", sketch, "-o", objects / "sketch.o")
    sh(*cxx, "-c", core / "core.cpp", "-o", objects / "core.o")
    elf = tmp_path / "sketch.elf"
    # linked by gcc: the sketch needs no C++ library
    sh("arm-none-eabi-gcc", *NANO33BLE, *LINK, *sorted(objects.glob("*.o")), "-o", elf)
    demangled = sh("arm-none-eabi-nm", "-C", "--defined-only", elf)
    assert "setup()" in demangled and "loop()" in demangled and " tp_model_invoke" in demangled


def test_export_from_a_build_folder(tmp_path: Path, capsys) -> None:
    from tinyprune.outputs import output_folder

    build = tmp_path / "kws-nucleo_f401re"
    with output_folder(build, names=("report.json", "model_int8.tflite")) as work:
        shutil.copy(KWS, work / "model_int8.tflite")
        (work / "report.json").write_text(json.dumps({
            "board": {"name": "nucleo_f401re"}, "model": {"source": "kws.keras"},
            "firmware": {}, "run": {}}))
    out = tmp_path / "lib"
    assert main(["export", "--format", "cmake", "--from", str(build), "--out", str(out)]) == 0
    header = (out / "include" / "kws.h").read_text()
    assert "from kws.keras for nucleo_f401re" in header and "KWS_INPUT0_SCALE" in header
    assert "-mcpu=cortex-m4" in (out / "CMakeLists.txt").read_text()
    assert main(["export", "--format", "make", "--from", str(build), "--board", "nucleo_f746",
                 "--out", str(tmp_path / "x")]) == 2
    assert "the build in" in capsys.readouterr().err and not (tmp_path / "x").exists()


@pytest.mark.parametrize(("args", "needle"), [
    (["--format", "cmake", "--model", str(KWS)], "give --model M.tflite and --board B"),
    (["--format", "zip", "--model", str(KWS), "--board", "nucleo_f746"], "invalid choice 'zip'"),
    (["--format", "cmake", "--model", str(KWS), "--board", "nucleo_f746", "--name", "Model-1"],
     "--name: expected a lowercase C identifier"),
    (["--format", "cmake", "--model", str(KWS), "--board", "nucleo_f746", "--name", "model"],
     "--name: expected a lowercase C identifier"),
    (["--format", "make", "--from", "nowhere", "--model", str(KWS)], "--from and --model"),
    (["--format", "make", "--model", "missing.tflite", "--board", "nucleo_f746"],
     "missing.tflite"),
])
def test_export_usage_errors(args: list[str], needle: str, tmp_path: Path, capsys) -> None:
    assert main(["export", *args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_export_is_reproducible(tmp_path: Path) -> None:
    a, b = export("arduino", tmp_path / "a"), export("arduino", tmp_path / "b")
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file()
                   and not p.name.startswith("."))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()
                           and not p.name.startswith("."))
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert not any(str(tmp_path) in (a / f).read_text() for f in files)
