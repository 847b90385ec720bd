"""Debian's Chromium driven by Playwright, for the browser tests: installed when missing, launched headless
with nothing but loopback reachable."""

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Browser, Playwright, Route

from app.embedded import short_runtime_dir

# A knob for other layouts, and for checking the "no Chromium" path: point it at a file that does not exist.
CHROMIUM = Path(os.environ.get("SIA_TEST_CHROMIUM", "/usr/bin/chromium"))
INSTALL = ["install", "-y", "--no-install-recommends", "chromium"]
# Headless as root, in a network that refuses outbound connections: no sandbox (it needs an unprivileged user),
# and none of Chromium's own calls home (component updates, sync, field trials...).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Debian's launcher adds this one when /dev/shm is small, but its check can fail ("[: unexpected operator").
    "--disable-dev-shm-usage",
]


def install_chromium() -> str | None:
    """Debian's chromium when it is missing; why it could not be installed, or None.

    The test installs what it needs itself (not a Makefile step before pytest): this one place serves `make test`,
    `.ci/run` and a bare `pytest tests/test_docs_browser.py` alike, and a run that deselects the test installs
    nothing. apt-get's lists are refreshed only when the install fails without them (a fresh image has none)."""
    if CHROMIUM.exists():
        return None
    if shutil.which("apt-get") is None:
        return f"{CHROMIUM} is missing and this machine has no apt-get to install it"
    if os.geteuid() != 0:
        return f"{CHROMIUM} is missing and only root can install it: sudo apt-get {' '.join(INSTALL)}"

    def apt_get(*arguments: str) -> subprocess.CompletedProcess:
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        command = ["apt-get", *arguments]
        return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=900, check=False)

    done = apt_get(*INSTALL)
    if done.returncode != 0:
        apt_get("update")
        done = apt_get(*INSTALL)
    if CHROMIUM.exists():
        return None
    return f"`apt-get {' '.join(INSTALL)}` did not install {CHROMIUM}:\n{(done.stdout + done.stderr)[-2000:]}"


def outside_loopback_blocked(attempts: list[str]) -> Callable[[Route], None]:
    def handle(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1":
            route.continue_()
        else:
            attempts.append(url)
            route.abort("blockedbyclient")

    return handle


def launch(playwright: Playwright, chromium: Path) -> Browser:
    """Chromium makes its singleton socket in TMPDIR: a TMPDIR too deep for a unix socket gets a short one."""
    environment = {**os.environ, "TMPDIR": str(short_runtime_dir("sia-chromium"))}
    return playwright.chromium.launch(executable_path=str(chromium), args=FLAGS, env=environment)
