"""Shared fixtures: a moto server (a DynamoDB-compatible server on loopback), started once per
test session and stopped at its end; or, with FLEETBREAKER_MOTO_ENDPOINT set, one already running
(the arm64 checks run the tests under emulation against a server on the host)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

# moto's app with one request at a time: its conditional writes are then atomic, as DynamoDB's
# are (moto's own threaded server lets two of them win on a loaded machine).
MOTO_SERVER = Path(__file__).resolve().parents[2] / "scripts" / "moto-server"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Moto:
    def __init__(self, port: int) -> None:
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        python = os.environ.get("FLEETBREAKER_PYTHON", sys.executable)
        # The server logs every request to stderr: a file, not a pipe nobody drains, or it
        # blocks once the pipe is full.
        self.log = tempfile.TemporaryFile()
        try:
            self.process = subprocess.Popen(
                [python, str(MOTO_SERVER), "127.0.0.1", str(port)],
                stdout=subprocess.DEVNULL,
                stderr=self.log,
            )
        except OSError as e:  # pragma: no cover - a broken environment
            pytest.fail(f"cannot start moto's server with {python}: {e}; pip install 'moto[server]'")
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                pass
            if self.process.poll() is not None:
                self.log.seek(0)
                err = self.log.read().decode(errors="replace")
                pytest.fail(
                    "these tests need moto's server, a DynamoDB-compatible server on loopback: "
                    f"pip install 'moto[server]' (scripts/test installs it). It exited: {err}"
                )
            if time.monotonic() > deadline:
                pytest.fail("moto's server did not start within 30 s")
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        self.log.close()


class RunningMoto:
    """A server this session did not start, and does not stop."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.port = int(self.endpoint.rsplit(":", 1)[1])

    def stop(self) -> None:
        pass


@pytest.fixture(scope="session")
def moto() -> Iterator[Moto | RunningMoto]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    running = os.environ.get("FLEETBREAKER_MOTO_ENDPOINT")
    server = RunningMoto(running) if running else Moto(_free_port())
    yield server
    server.stop()


_tables = iter(range(1, 1_000_000))


@pytest.fixture
def table_name() -> str:
    return f"breakers-{os.getpid()}-{next(_tables)}"
