"""A container as a local process group: start it, signal it, find it again after a crash.

Each container runs in its own session (so its own process group): signalling the group reaches
everything the container started, as stopping a real container's cgroup would.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

log = logging.getLogger("node-agent")


class StartFailed(Exception):
    """The command could not be executed (kubelet: StartError); `code` is the shell's convention."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def spawn(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log_path: Path, pid_file: Path
) -> subprocess.Popen[bytes]:
    """Starts `argv` with stdout+stderr appended to `log_path` and records it in `pid_file`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        try:
            if not argv:
                raise StartFailed(127, 'failed to start container process: exec: "": no command specified')
            proc = subprocess.Popen(
                list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
            )
        except OSError as exc:
            # The runtime's wording (runc's "exec: ...") and the shell's exit codes: 126 for a
            # file that cannot be executed, 127 for one that is not there.
            code = 126 if isinstance(exc, PermissionError) else 127
            if code == 126:
                what = "permission denied"
            elif "/" in argv[0]:
                what = "no such file or directory"
            else:
                what = "executable file not found in $PATH"
            failure = StartFailed(code, f'failed to start container process: exec: "{argv[0]}": {what}')
            out.write(f"{failure}\n".encode())
            raise failure from exc
        except StartFailed as failure:
            out.write(f"{failure}\n".encode())
            raise
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{proc.pid} {start_ticks(proc.pid)}\n")
    return proc


def exit_code_of(returncode: int) -> tuple[int, int | None]:
    """Popen's returncode as a container exit code and signal: killed by signal N is 128+N."""
    if returncode < 0:
        return 128 - returncode, -returncode
    return returncode, None


def signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def start_ticks(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime) follows the parenthesised command, which may itself contain spaces.
    return stat.rsplit(")", 1)[1].split()[19]


def kill_leftovers(state_dir: Path) -> None:
    """Kills the process groups a previous agent run left behind (it died before it could)."""
    for pid_file in state_dir.glob("*/pids/*.pid"):
        with contextlib.suppress(OSError, ValueError):
            pid_text, ticks = pid_file.read_text().split()
            pid = int(pid_text)
            # The start time proves the pid was not reused by an unrelated process since.
            if start_ticks(pid) == ticks:
                os.killpg(pid, signal.SIGKILL)
                log.info("killed leftover process group %d (%s)", pid, pid_file)
        pid_file.unlink(missing_ok=True)
