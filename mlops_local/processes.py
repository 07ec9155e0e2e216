"""Child processes the local platform owns: start in their own group, wait for health, stop.

Every process runs in a new session (its own process group), so stopping it reaches the
workers it forked (MLflow's uvicorn) too: SIGTERM to the group, wait, then SIGKILL.

Ports: a child that can bind port 0 and name the port it got in its log should (see
`reported_port`): no other process can take that port in between. `free_port` is for
children that cannot; the port is free when chosen and may be taken before the child binds
it, so such a child is started through `on_free_port`, which retries on another port.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Final, TypeVar

LOOPBACK: Final = "127.0.0.1"


T = TypeVar("T")
# How servers started on port 0 name the port they got: werkzeug (moto_server) and uvicorn
# (MLflow, the model server) print the bound address once listening.
WERKZEUG_PORT: Final = re.compile(r"Running on http://127\.0\.0\.1:(\d+)")
UVICORN_PORT: Final = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


class ServerError(Exception):
    """A local server did not come up; the message ends with the tail of its log."""


class PortTaken(ServerError):
    """The chosen port was bound by someone else before the child bound it."""


def free_port(host: str = LOOPBACK) -> int:
    """A port nothing listens on right now (the OS picks it). Racy by nature: prefer a child
    that binds port 0 itself, else start it through `on_free_port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def on_free_port(start: Callable[[int], T], *, attempts: int = 3, host: str = LOOPBACK) -> T:
    """`start(port)` on a free port, and again on another one while it raises `PortTaken`."""
    for _ in range(attempts - 1):
        with contextlib.suppress(PortTaken):
            return start(free_port(host))
    return start(free_port(host))


def reported_port(
    log_path: Path,
    pattern: re.Pattern[str],
    *,
    name: str,
    running: Callable[[], bool],
    timeout_s: float,
) -> int:
    """The port a child started on port 0 names in its log (`pattern`'s first group); fails
    early, with the log's tail, if the child exits first."""
    deadline = time.monotonic() + timeout_s
    while True:
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        found = pattern.search(text)
        if found:
            return int(found.group(1))
        tail = "\n".join(text.splitlines()[-15:])
        if not running():
            raise ServerError(
                f"{name} exited before naming its port; its log ({log_path}) ends with:\n{tail}"
            )
        if time.monotonic() > deadline:
            raise ServerError(
                f"{name} named no port matching {pattern.pattern!r} in its log within "
                f"{timeout_s:g}s; its log ({log_path}) ends with:\n{tail}"
            )
        time.sleep(0.1)


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((host, port)) == 0


class ManagedProcess:
    """One server process; a context manager that always stops what it started."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.cwd = cwd
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(  # noqa: S603 - argv is built by us, no shell
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def reported_port(self, pattern: re.Pattern[str], timeout_s: float) -> int:
        """The port this process, started on port 0, names in its log."""
        return reported_port(
            self.log_path, pattern, name=self.name, running=self.running, timeout_s=timeout_s
        )

    def wait_healthy(self, url: str, timeout_s: float) -> None:
        """Poll `url` until it answers 200; fail early if the process exits."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running():
                status = self._process.poll() if self._process else "?"
                raise ServerError(
                    f"{self.name} exited with status {status} "
                    f"before becoming healthy; its log ({self.log_path}) ends with:\n"
                    f"{self.log_tail()}"
                )
            # Not listening yet is the expected answer while the server starts.
            refused = (urllib.error.URLError, ConnectionError, TimeoutError)
            with (
                contextlib.suppress(*refused),
                urllib.request.urlopen(url, timeout=2) as response,  # noqa: S310 - loopback http
            ):
                if response.status == 200:
                    return
            time.sleep(0.2)
        raise ServerError(
            f"{self.name} did not answer {url} within {timeout_s:g}s; its log ({self.log_path}) "
            f"ends with:\n{self.log_tail()}"
        )

    def stop(self, grace_s: float = 10.0) -> int | None:
        """SIGTERM the process group, then SIGKILL after `grace_s`; returns the exit status."""
        process = self._process
        if process is None:
            return None
        try:
            if process.poll() is None:
                _signal_group(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=grace_s)
                except subprocess.TimeoutExpired:
                    _signal_group(process.pid, signal.SIGKILL)
                    process.wait(timeout=grace_s)
            # Workers the leader forked may outlive it: the group goes too.
            _signal_group(process.pid, signal.SIGKILL)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
        return process.returncode

    def __enter__(self) -> ManagedProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # The group may already be gone (it exited on its own): nothing left to signal.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
