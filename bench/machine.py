"""What every recorded benchmark states about where it ran: date, host CPU, cores, tool versions."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path


def host_cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(**extra: str) -> dict[str, str]:
    """Date, host CPU, cores, Python and arm-none-eabi-gcc versions, plus ``extra`` fields."""
    gcc = subprocess.run(["arm-none-eabi-gcc", "--version"], capture_output=True, text=True,
                         check=False).stdout.splitlines()[:1]
    return {"date": dt.date.today().isoformat(), "host_cpu": host_cpu(),
            "cores": str(os.cpu_count()), "python": platform.python_version(),
            "arm_gcc": gcc[0] if gcc else "missing", **extra}
