"""Child processes for the local stack: free loopback ports, start with a parent-death signal,
stop with a deadline.

Servers are started with ``subprocess.Popen`` rather than asyncio subprocesses so that a server
is not bound to the event loop that started it (pytest's session loop, ``asyncio.run`` in the
CLI); waiting is done by polling with deadlines from async code.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it; a small race is accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent(sig: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks Linux to signal the child when its parent dies, so a killed
    test run or CLI never leaves a JVM or postmaster behind on a small machine."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)

    return preexec


def spawn(
    argv: Sequence[str],
    *,
    output: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
    death_signal: int = signal.SIGTERM,
) -> subprocess.Popen[bytes]:
    """Start a server process with stdout and stderr appended to ``output``.

    ``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child exits, so servers must be
    spawned from a long-lived thread (the event loop's), never from ``asyncio.to_thread``.
    """
    if threading.current_thread() is not threading.main_thread():
        log.debug("spawning %s outside the main thread: no parent-death signal", argv[0])
        preexec = None
    else:
        preexec = _die_with_parent(death_signal)
    with output.open("ab") as out:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            user=user,
            group=user,
            extra_groups=[] if user is not None else None,
            preexec_fn=preexec,
        )


async def stop_process(
    proc: subprocess.Popen[bytes],
    *,
    sig: int = signal.SIGTERM,
    grace: float = 30.0,
) -> int:
    """Send ``sig``, give the process ``grace`` seconds to exit, then SIGKILL it.
    Returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            return await asyncio.to_thread(proc.wait, grace)
        except subprocess.TimeoutExpired:
            log.warning("pid %d ignored signal %d for %.0fs: killing it", proc.pid, sig, grace)
            proc.kill()
    return await asyncio.to_thread(proc.wait)


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no output)"
    return "\n".join(text.splitlines()[-lines:])


def run_checked(
    argv: Sequence[str],
    *,
    what: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
    stdout: IO[bytes] | None = None,
) -> None:
    """Run a short-lived tool; on failure raise with its output."""
    result = subprocess.run(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        user=user,
        group=user,
        extra_groups=[] if user is not None else None,
        check=False,
    )
    if result.returncode != 0:
        out = (result.stdout or b"").decode(errors="replace")[-4000:]
        raise RuntimeError(f"{what} failed (exit {result.returncode}): {' '.join(argv)}\n{out}")


def apt_install(*packages: str) -> bool:
    """Install Debian packages non-interactively when we are root and apt-get exists.
    Returns False (installing nothing) otherwise, so the caller can explain what is missing."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return False
    log.info("installing %s with apt-get (first run only)", " ".join(packages))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run_checked(["apt-get", "update", "-q"], what="apt-get update", env=env)
    run_checked(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
        what=f"apt-get install {' '.join(packages)}",
        env=env,
    )
    return True


def environ_without(*names: str) -> dict[str, str]:
    """A copy of the environment minus ``names`` (e.g. JVM options a developer exported)."""
    return {k: v for k, v in os.environ.items() if k not in names}
