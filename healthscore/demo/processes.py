"""The demo's child processes: each service runs as ``healthscore <service>`` in its own process
group, with its output in a log file, and is stopped by signalling the whole group (a service
that forks workers leaves nothing behind)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from healthscore.local.process import tail

_PR_SET_PDEATHSIG = 1


class ServiceFailedError(RuntimeError):
    """A service exited or did not become ready in time; the message carries its log tail."""


def _die_with_parent() -> None:
    # Linux: the child gets SIGTERM if the demo dies without cleaning up (kill -9), so no
    # service outlives it on a small machine.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def healthscore_argv(*args: str) -> list[str]:
    """``healthscore <args>`` with the interpreter running the demo (works in any venv)."""
    return [sys.executable, "-m", "healthscore.cli", *args]


@dataclass
class ServiceProcess:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    log_path: Path
    ready_url: str | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    started_at: float = 0.0
    ready_after: float | None = None  # seconds from start to ready

    def start(self) -> None:
        preexec = (
            _die_with_parent if threading.current_thread() is threading.main_thread() else None
        )
        self.started_at = time.monotonic()
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(self.env),
                start_new_session=True,  # its own process group: stopped as a whole
                preexec_fn=preexec,
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def failure(self, what: str) -> ServiceFailedError:
        return ServiceFailedError(
            f"{self.name} {what}; last lines of {self.log_path}:\n{tail(self.log_path, 30)}"
        )

    async def wait_ready(self, client: httpx.AsyncClient, within: float) -> float:
        """Poll ``ready_url`` until it answers 200; raise if the process exits or time runs out.
        Returns the seconds the service took to become ready."""
        deadline = time.monotonic() + within
        while True:
            if not self.running:
                code = self.proc.returncode if self.proc is not None else None
                raise self.failure(f"exited with status {code} before it was ready")
            if self.ready_url is None:
                break
            with contextlib.suppress(httpx.HTTPError):
                response = await client.get(self.ready_url, timeout=2.0)
                if response.status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise self.failure(f"was not ready within {within:.0f}s ({self.ready_url})")
            await asyncio.sleep(0.2)  # polling interval of a readiness probe
        self.ready_after = time.monotonic() - self.started_at
        return self.ready_after

    async def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await asyncio.to_thread(proc.wait)
        # Children that outlived the group leader (a forked worker) go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.returncode
