"""Starting, finding and stopping the stack's own processes by pid file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# The children this process started, kept so that they are reaped when stopped and never
# garbage-collected while running (which would warn "subprocess is still running").
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class StackError(RuntimeError):
    """A service could not be started; the message names its log file."""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    address: str
    pid: int | None  # our pid, or None when not started by the stack
    answering: bool
    log_file: Path

    def describe(self) -> str:
        if self.answering and self.pid is not None:
            state = f"running (pid {self.pid})"
        elif self.answering:
            state = "answering, not started by this stack"
        elif self.pid is not None:
            state = f"process {self.pid} alive but not answering"
        else:
            state = "stopped"
        return f"{self.name:<6} {self.address:<22} {state:<40} log: {self.log_file}"


class ManagedProcess:
    """One long-running child, detached from our terminal, remembered by a pid file.

    ``marker`` is a string that must appear in the process's command line: a stale pid file
    whose pid was reused by some other program is never signalled.
    """

    def __init__(self, pid_file: Path, log_file: Path, marker: str) -> None:
        self.pid_file = pid_file
        self.log_file = log_file
        self.marker = marker

    def pid(self) -> int | None:
        """The pid of our process if it is alive, else None (and a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        child = _CHILDREN.get(pid)
        if child is not None:
            # Started by this process: no need for its command line, which reads empty for
            # a moment while the child execs (a just-started broker would look like a stranger).
            alive = child.poll() is None
        else:
            alive = self.marker in (_command_line(pid) or "")
        if not alive:
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid

    def start(self, command: Sequence[str], env: dict[str, str] | None = None) -> int:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            child = subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                # A new session: Ctrl-C in the terminal that ran `stack up` must not kill it.
                start_new_session=True,
            )
        _CHILDREN[child.pid] = child
        self.pid_file.write_text(f"{child.pid}\n")
        return child.pid

    def stop(self, grace_seconds: float = 20.0) -> bool:
        """SIGTERM, then SIGKILL after the grace period. True when there was something to stop."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        self._kill_and_forget(pid)
        return True

    def kill(self) -> bool:
        """SIGKILL at once, as in a crash (no shutdown hook runs). True when it was running."""
        pid = self.pid()
        if pid is None:
            return False
        self._kill_and_forget(pid)
        return True

    def _kill_and_forget(self, pid: int) -> None:
        """SIGKILL ``pid`` if it still runs, wait until it is gone, reap it, drop its pid file."""
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        child = _CHILDREN.pop(pid, None)
        if child is not None:
            child.wait()
        self.pid_file.unlink(missing_ok=True)

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log yet)"


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    still_starting: Callable[[], bool],
    interval: float = 0.2,
) -> bool:
    """Poll ``check`` until it is true; give up early when the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        if not still_starting():
            return False
        time.sleep(interval)
    return False


def port_is_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _alive(pid: int) -> bool:
    # A zombie child of ours counts as gone: reap it if it is ours to reap, through its Popen
    # when we have one (so that it knows it ended and does not warn "still running").
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = _proc_state(pid)
    return state not in {"Z", "X"}


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _command_line(pid: int) -> str | None:
    if not _alive(pid):
        return None
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
