"""A hostile server: ``check http://...`` ends within ``max_download_seconds`` and reads at most
``max_download_bytes``, however the server behaves. Real servers on 127.0.0.1, started here."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ogverify.evidence.bundle import DEFAULT_LIMITS
from tests.conftest import RunCli


class Trickler:
    """Answers every request with a 200 whose headers or body come one byte at a time, forever."""

    def __init__(self, where: str, pause: float = 0.1) -> None:
        self.where, self.pause = where, pause
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/b.ogb"

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            try:
                connection.recv(65536)
                if self.where == "body":
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n")
                else:
                    connection.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                while not self.stopped.wait(self.pause):
                    connection.sendall(b"a")
            except OSError:
                pass  # the client went away, as it should

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(5)
        self.listener.close()


@pytest.fixture(params=["body", "headers"])
def trickler(request: pytest.FixtureRequest) -> Iterator[Trickler]:
    server = Trickler(request.param)
    yield server
    server.close()


def _policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_trickling_server_cannot_hold_a_check(trickler: Trickler, tmp_path: Path, run_cli: RunCli) -> None:
    policy = _policy(tmp_path, "[limits]\nmax_download_seconds = 1\n")
    started = time.monotonic()
    result = run_cli("check", trickler.url, "--allow-unsigned", "--policy", policy, "--format", "json")
    elapsed = time.monotonic() - started
    assert result.exit_code == 3, result.output
    assert json.loads(result.stdout)["headline"] == (
        f"COULD NOT VERIFY: cannot fetch {trickler.url}: not finished within 1 s (max_download_seconds)")
    assert elapsed < 10, elapsed


def test_a_download_stops_at_its_cap(tmp_path: Path, run_cli: RunCli) -> None:
    """A server that sends more than max_download_bytes, quickly: refused at the cap, not read to the end."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n")
            try:
                for _ in range(10):
                    connection.sendall(bytes(1_000_000))
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/big.ogb"
    policy = _policy(tmp_path, "[limits]\nmax_download_bytes = 100000\n")
    try:
        result = run_cli("check", url, "--allow-unsigned", "--policy", policy, "--format", "json")
    finally:
        thread.join(10)
        listener.close()
    assert result.exit_code == 3, result.output
    assert json.loads(result.stdout)["headline"] == (
        f"COULD NOT VERIFY: cannot fetch {url}: more than 100000 bytes (max_download_bytes)")


def test_the_default_download_limits_are_real_limits() -> None:
    assert DEFAULT_LIMITS.max_download_bytes <= 64 << 30
    assert DEFAULT_LIMITS.max_download_seconds <= 4 * 3600
