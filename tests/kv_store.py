"""A real Valkey or Redis server for the tests of the shared rate-limit store: Debian's package, installed when
missing (as tests/browser.py installs Chromium), started on a free loopback port in a temporary folder."""

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Valkey first (Debian 13 ships it); Debian 12 has only Redis, which speaks the same protocol.
PACKAGES = {"valkey-server": "valkey-server", "redis-server": "redis-server"}


def find_server() -> str | None:
    return next((path for name in PACKAGES if (path := shutil.which(name))), None)


def install_server() -> tuple[str | None, str | None]:
    """(the server's path, None), or (None, why it could not be installed). apt-get's lists are refreshed only
    when the install fails without them (a fresh image has none)."""
    if server := find_server():
        return server, None
    if shutil.which("apt-get") is None:
        return None, "neither valkey-server nor redis-server is installed and this machine has no apt-get"
    if os.geteuid() != 0:
        return None, "neither valkey-server nor redis-server is installed and only root can install them"

    def apt_get(*arguments: str) -> subprocess.CompletedProcess:
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        command = ["apt-get", *arguments]
        return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=900, check=False)

    output = ""
    for refreshed in (False, True):
        if refreshed:
            apt_get("update")
        for package in PACKAGES.values():
            done = apt_get("install", "-y", "--no-install-recommends", package)
            output += done.stdout + done.stderr
            if server := find_server():
                return server, None
    return None, f"`apt-get install` installed neither valkey-server nor redis-server:\n{output[-2000:]}"


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def running_server(server: str, folder: Path) -> Iterator[str]:
    """Yields a redis:// URL of a server of this test run alone: loopback only, nothing written to disk."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder.mkdir(parents=True, exist_ok=True)
    arguments = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "", "--appendonly", "no"]
    log = (folder / "server.log").open("w")
    process = subprocess.Popen([server, *arguments], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while not _ping(port):
            assert process.poll() is None, (folder / "server.log").read_text()
            assert time.monotonic() < deadline, "the Valkey/Redis server did not answer PING"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)
        log.close()
