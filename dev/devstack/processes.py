"""Start, find and stop the stack's background processes through pid files.

`down` must stop only what `up` started: each pid file records the pid and the process's start time
(from /proc), and a pid whose start time no longer matches (it died and the pid was reused) is ignored.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class StackError(RuntimeError):
    """A service could not be started; the message names it and where its log is."""


@dataclass(frozen=True)
class Managed:
    name: str
    run_dir: Path
    log_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            pid_text, started = self.pid_file.read_text().split()
            pid = int(pid_text)
        except (FileNotFoundError, ValueError):
            return None
        return pid if _start_time(pid) == started and _alive(pid) else None

    def running(self) -> bool:
        return self.pid() is not None

    def start(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> int:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{proc.pid} {_start_time(proc.pid)}\n")
        return proc.pid

    def stop(self, grace_seconds: float = 15.0) -> bool:
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # Field 22 (starttime); the command name in field 2 may contain spaces, so split after it.
    return stat.rpartition(")")[2].split()[19]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours still answers kill(0); reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def wait_until(
    service: Managed, ready: Callable[[], bool], *, timeout: float, what: str
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if not service.running():
            raise StackError(
                f"{service.name} exited while starting; its log {service.log_file} ends with:\n"
                f"{service.tail()}"
            )
        time.sleep(0.25)
    raise StackError(
        f"{service.name} did not become ready ({what}) within {timeout:.0f}s; "
        f"see {service.log_file}:\n{service.tail()}"
    )


def run_build(script: Path, *, what: str, timeout: float = 3600) -> None:
    """Runs one of dev/build's scripts: a no-op when what it makes is cached; otherwise it says on
    stderr what it builds while the user waits, and a failure shows its output and names the step."""
    try:
        proc = subprocess.run([str(script)], stdout=sys.stderr, check=False, timeout=timeout)
    except subprocess.TimeoutExpired as slow:
        raise StackError(f"{what} did not finish within {timeout:.0f}s") from slow
    if proc.returncode != 0:
        raise StackError(f"{what} failed (exit {proc.returncode}); its output is above")


def run_checked(argv: Sequence[str], *, what: str, **kwargs: object) -> str:
    """Runs a short setup command and turns a failure into a StackError that shows its output."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise StackError(f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n{proc.stdout}{proc.stderr}")
    return str(proc.stdout)
