"""A small client of Chromium's DevTools protocol over ``--remote-debugging-pipe``.

The browser is Debian's ``chromium``, headless, with a new empty profile and every background
network feature off. The pipe (fd 3 in, fd 4 out, messages separated by NUL) needs no port and
no extra package. :func:`render_page` opens one file and returns what a reader would see: a
full-page screenshot (PNG), the result of a DOM query, and every console message, uncaught
exception, log entry and network request the page caused.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--remote-debugging-pipe")


def chromium() -> str | None:
    return shutil.which("chromium")


@dataclass
class Page:
    """What the page showed and did."""

    png: bytes
    query: Any
    console: list[dict[str, Any]] = field(default_factory=list)  # consoleAPICalled params
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)  # Log.entryAdded entries
    requests: list[str] = field(default_factory=list)  # every URL the page requested


class _Pipe:
    def __init__(self, exe: str, profile: Path, width: int) -> None:
        to_child, self._w = os.pipe()
        self._r, from_child = os.pipe()
        # above fd 4, so that placing them at 3 and 4 in the child never clobbers one of them
        high_in = fcntl.fcntl(to_child, fcntl.F_DUPFD, 10)
        high_out = fcntl.fcntl(from_child, fcntl.F_DUPFD, 10)
        os.close(to_child)
        os.close(from_child)

        def place() -> None:
            os.dup2(high_in, 3)
            os.dup2(high_out, 4)

        self.proc = subprocess.Popen(
            [exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},900",
             "about:blank"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, pass_fds=(3, 4), preexec_fn=place)
        os.close(high_in)
        os.close(high_out)
        self._next = 0
        self.events: list[dict[str, Any]] = []
        self._inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buf = b""
        while True:
            chunk = os.read(self._r, 1 << 16)
            if not chunk:
                self._inbox.put(None)
                return
            buf += chunk
            while b"\0" in buf:
                msg, buf = buf.split(b"\0", 1)
                self._inbox.put(json.loads(msg))

    def _take(self, deadline: float) -> dict[str, Any]:
        msg = self._inbox.get(timeout=max(deadline - time.monotonic(), 0.01))
        if msg is None:
            raise RuntimeError("chromium closed the DevTools pipe")
        if "method" in msg:
            self.events.append(msg)
        return msg

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None, timeout: float = 60.0) -> dict[str, Any]:
        self._next += 1
        msg: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session is not None:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._take(deadline)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))

    def wait_event(self, method: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for ev in self.events:
            if ev["method"] == method:
                return ev
        while True:
            msg = self._take(deadline)
            if msg.get("method") == method:
                return msg

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, queue.Empty, OSError):
            self.call("Browser.close", timeout=10)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)


def render_page(path: Path, profile: Path, query: str, width: int = 1200,
                settle: float = 0.3) -> Page:
    """Loads ``path`` in headless Chromium and returns the screenshot, ``query``'s value
    (a JavaScript expression, JSON-serialisable) and what the page logged and requested."""
    exe = chromium()
    assert exe is not None, "chromium is not installed"
    profile.mkdir(parents=True, exist_ok=True)
    pipe = _Pipe(exe, profile, width)
    try:
        target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = pipe.call("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            pipe.call(f"{domain}.enable", session=session)
        pipe.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": 900,
                                                         "deviceScaleFactor": 1,
                                                         "mobile": False}, session=session)
        pipe.call("Page.navigate", {"url": path.resolve().as_uri()}, session=session)
        pipe.wait_event("Page.loadEventFired")
        time.sleep(settle)  # let late console messages arrive
        value = pipe.call("Runtime.evaluate", {"expression": query, "returnByValue": True},
                          session=session)
        if "exceptionDetails" in value:
            raise RuntimeError(f"the query failed: {value['exceptionDetails']}")
        size = pipe.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
        shot = pipe.call("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": size["height"], "scale": 1}},
            session=session)
        events = list(pipe.events)
    finally:
        pipe.close()

    def params(name: str) -> list[dict[str, Any]]:
        return [e["params"] for e in events if e["method"] == name]

    return Page(png=base64.b64decode(shot["data"]), query=value["result"].get("value"),
                console=params("Runtime.consoleAPICalled"),
                exceptions=params("Runtime.exceptionThrown"),
                log=[p["entry"] for p in params("Log.entryAdded")],
                requests=[p["request"]["url"] for p in params("Network.requestWillBeSent")])
