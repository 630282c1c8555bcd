"""A throwaway PostgreSQL cluster from Debian's binaries (no Docker).

``initdb`` and ``postgres`` refuse to run as root, so when we are root both run as Debian's
``postgres`` system user, with the cluster directory under /tmp owned by it. The server listens
on a free loopback port with trust authentication and ``fsync=off``: it is for tests and local
demos only, and its data is removed on ``stop()``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from healthscore.local.process import (
    apt_install,
    free_port,
    run_checked,
    spawn,
    stop_process,
    tail,
)

log = logging.getLogger(__name__)

DEBIAN_PG_ROOT = Path("/usr/lib/postgresql")
SYSTEM_USER = "postgres"
SUPERUSER = "postgres"


def _version_key(path: Path) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in path.name.split("."))
    except ValueError:
        return (-1,)


def find_postgres_bin_dir(root: Path = DEBIAN_PG_ROOT) -> Path | None:
    """The highest installed ``/usr/lib/postgresql/<version>/bin`` that has initdb."""
    if not root.is_dir():
        return None
    candidates = [p / "bin" for p in root.iterdir() if (p / "bin" / "initdb").exists()]
    if not candidates:
        return None
    return max(candidates, key=lambda b: _version_key(b.parent))


def ensure_postgres_installed() -> Path:
    """Debian's PostgreSQL binaries, installing the ``postgresql`` package when we are root.

    Blocking: call through ``asyncio.to_thread``.
    """
    found = find_postgres_bin_dir()
    if found is not None:
        return found
    if not apt_install("postgresql"):
        raise RuntimeError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin. Install "
            "them (Debian/Ubuntu: sudo apt-get install -y postgresql) or point DATABASE_URL at "
            "a running server."
        )
    found = find_postgres_bin_dir()
    if found is None:
        raise RuntimeError("apt-get installed postgresql but no initdb was found")
    return found


class PostgresStartError(RuntimeError):
    """The server exited or did not accept connections in time; the message has its log."""


class LocalPostgres:
    """A throwaway PostgreSQL server on 127.0.0.1.

    ``server_url`` is ``postgresql+asyncpg://postgres@127.0.0.1:PORT/postgres``; ``url(name)``
    points at another database on the same server.
    """

    def __init__(self, *, startup_timeout: float = 60.0, max_connections: int = 300) -> None:
        self._startup_timeout = startup_timeout
        self._max_connections = max_connections
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None
        self.port = 0
        self.version = ""

    @property
    def server_url(self) -> str:
        return self.url("postgres")

    def url(self, database: str) -> str:
        if not self.port:
            raise RuntimeError("LocalPostgres has not been started")
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    async def __aenter__(self) -> LocalPostgres:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @staticmethod
    def _run_as() -> str | None:
        """The user to run the server as: ``postgres`` when we are root, else ourselves."""
        return SYSTEM_USER if os.geteuid() == 0 else None

    def _initdb(self, bin_dir: Path) -> None:
        user = self._run_as()
        self._dir = Path(tempfile.mkdtemp(prefix="healthscore-pg-"))
        (self._dir / "sock").mkdir()
        if user is not None:
            entry = pwd.getpwnam(user)
            for path in (self._dir, self._dir / "sock"):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        try:
            self._run_initdb(bin_dir, user)
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            raise
        self.version = bin_dir.parent.name

    def _run_initdb(self, bin_dir: Path, user: str | None) -> None:
        assert self._dir is not None
        run_checked(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(self._dir / "data"),
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            what="initdb",
            user=user,
            cwd=self._dir,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
        )

    async def start(self) -> None:
        if self.running:
            return
        bin_dir = await asyncio.to_thread(ensure_postgres_installed)
        if self._dir is None:
            await asyncio.to_thread(self._initdb, bin_dir)
        assert self._dir is not None
        if not self.port:
            self.port = free_port()
        log_file = self._dir / "postgres.log"
        if self._run_as() is not None:
            log_file.touch()
            entry = pwd.getpwnam(SYSTEM_USER)
            os.chown(log_file, entry.pw_uid, entry.pw_gid)
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self._dir / "sock"),
            # Throwaway data: durability buys nothing and costs test time.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            # Several test sessions and services share one server; each test has its own pools.
            "max_connections": str(self._max_connections),
            "shared_buffers": "64MB",
        }
        argv = [str(bin_dir / "postgres"), "-D", str(self._dir / "data")]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        self._proc = spawn(
            argv,
            output=log_file,
            user=self._run_as(),
            cwd=self._dir,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
            # Immediate shutdown if our process dies: the data is throwaway.
            death_signal=signal.SIGQUIT,
        )
        try:
            await self._await_ready(log_file)
        except BaseException:
            await stop_process(self._proc, sig=signal.SIGQUIT, grace=5)
            self._proc = None
            raise

    async def _await_ready(self, log_file: Path) -> None:
        import asyncpg

        assert self._proc is not None
        deadline = time.monotonic() + self._startup_timeout
        while True:
            if self._proc.poll() is not None:
                raise PostgresStartError(
                    f"postgres exited with {self._proc.returncode}:\n{tail(log_file)}"
                )
            try:
                conn = await asyncpg.connect(
                    host="127.0.0.1",
                    port=self.port,
                    user=SUPERUSER,
                    database="postgres",
                    timeout=2,
                )
            except (OSError, asyncpg.PostgresError, asyncpg.CannotConnectNowError):
                if time.monotonic() > deadline:
                    raise PostgresStartError(
                        f"postgres not accepting connections after {self._startup_timeout}s:\n"
                        f"{tail(log_file)}"
                    ) from None
                await asyncio.sleep(0.05)
            else:
                await conn.close()
                return

    async def stop(self, *, grace: float = 30.0) -> None:
        """Fast shutdown (SIGINT: disconnect clients, exit cleanly), then remove the data."""
        if self._proc is not None:
            await stop_process(self._proc, sig=signal.SIGINT, grace=grace)
            self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            self.port = 0
