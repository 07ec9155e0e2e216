"""Ports for child servers: the port a child bound (port 0) read from its log, and a
retry on another port for children that cannot bind port 0."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from mlops_local.processes import (
    LOOPBACK,
    ManagedProcess,
    PortTaken,
    ServerError,
    on_free_port,
)

HTTP_SERVER_PORT = re.compile(r"Serving HTTP on 127\.0\.0\.1 port (\d+)")


def test_a_child_on_port_0_is_reached_on_the_port_its_log_names(tmp_path: Path) -> None:
    argv = [sys.executable, "-u", "-m", "http.server", "0", "--bind", LOOPBACK]
    (tmp_path / "index.html").write_text("here")
    log = tmp_path / "server.log"
    with ManagedProcess("http.server", argv, env={}, log_path=log, cwd=tmp_path) as server:
        port = server.reported_port(HTTP_SERVER_PORT, timeout_s=30)
        assert port > 0
        server.wait_healthy(f"http://{LOOPBACK}:{port}/index.html", timeout_s=30)


def test_a_child_that_exits_before_naming_a_port_fails_with_its_log(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "print('no port for you'); raise SystemExit(3)"]
    with (
        ManagedProcess("quitter", argv, env={}, log_path=tmp_path / "q.log") as server,
        pytest.raises(ServerError, match=r"quitter exited before naming its port(.|\n)*no port"),
    ):
        server.reported_port(HTTP_SERVER_PORT, timeout_s=30)


def test_a_port_taken_before_the_child_binds_it_is_retried_on_another() -> None:
    tried: list[int] = []

    def start(port: int) -> int:
        tried.append(port)
        if len(tried) < 3:
            raise PortTaken(f"port {port} taken")
        return port

    assert on_free_port(start, attempts=3) == tried[-1]
    assert len(tried) == 3
    tried.clear()
    with pytest.raises(PortTaken):
        on_free_port(start, attempts=2)
    assert len(tried) == 2
