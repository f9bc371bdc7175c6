"""Helpers of the console tests: a real uvicorn server in a thread, Chromium, axe-core from npm."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("S3TR_CHROMIUM", "/usr/bin/chromium"))
NPM_PREFIX = Path(os.environ.get("S3TR_NPM_PREFIX", Path.home() / ".cache" / "s3tr" / "npm"))
AXE = NPM_PREFIX / "node_modules" / "axe-core" / "axe.min.js"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free loopback port; yields its base URL."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def chromium_or_skip() -> Path:
    if not CHROMIUM.is_file():
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM} (apt-get install -y chromium)")
    return CHROMIUM


def axe_script() -> Path:
    """axe-core's script, installed from npm into a cache folder on first use."""
    if AXE.is_file():
        return AXE
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: cannot fetch axe-core for the accessibility check")
    NPM_PREFIX.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(NPM_PREFIX), "axe-core@4"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0 or not AXE.is_file():
        pytest.fail(f"npm install axe-core failed:\n{done.stderr[-2000:]}")
    return AXE


@dataclass
class PageWatch:
    """What a page did that it must not: console errors, page errors, requests off the origin."""

    origin: str
    errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)

    def attach(self, context: Any, page: Any) -> None:
        def route(r: Any) -> None:
            url = r.request.url
            if url.startswith(self.origin + "/") or url.startswith(("data:", "blob:")):
                r.continue_()
            else:
                self.foreign.append(url)
                r.abort()

        context.route("**/*", route)
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

    def assert_clean(self) -> None:
        assert self.errors == [], f"console errors: {self.errors}"
        assert self.foreign == [], f"requests outside {self.origin}: {self.foreign}"
