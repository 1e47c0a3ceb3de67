"""Real PostgreSQL and Redis servers for tests: Debian's `postgresql` (run as the `postgres` user,
since its server refuses root) and `redis-server`, each in a directory of its own, stopped and
started again at will (the fault tests stop them under load).

`prefix` runs the server inside a network namespace (`["ip", "netns", "exec", NAME]`)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PG_USER = "wave"
PG_DB = "wave"


def postgres_bin() -> Path | None:
    """The newest installed server's bin directory (Debian keeps it off PATH)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name)
    )
    return found[-1].parent if found else None


def _as_postgres() -> list[str]:
    return [] if os.getuid() != 0 else ["runuser", "-u", "postgres", "--"]


@dataclass
class Postgres:
    """One PostgreSQL cluster in `root`, listening on `host:port` (TCP only, password auth)."""

    root: Path
    host: str
    port: int
    password: str
    prefix: Sequence[str] = ()
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"postgresql://{PG_USER}:{self.password}@{self.host}:{self.port}/{PG_DB}"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @classmethod
    def create(
        cls, host: str, port: int, password: str, *, prefix: Sequence[str] = (), user: str = PG_USER
    ) -> Postgres:
        bindir = postgres_bin()
        if bindir is None:
            raise FileNotFoundError("PostgreSQL is not installed (apt-get install postgresql)")
        root = Path(tempfile.mkdtemp(prefix="wave-pg-"))
        if os.getuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(root, pw.pw_uid, pw.pw_gid)
        pwfile = root / "pw"
        pwfile.write_text(password + "\n")
        if os.getuid() == 0:
            os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
        subprocess.run(
            [
                *_as_postgres(),
                str(bindir / "initdb"),
                "-D",
                str(root / "data"),
                "-U",
                user,
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        pwfile.unlink()
        server = cls(root, host, port, password, prefix)
        with (root / "data" / "pg_hba.conf").open("a") as f:
            f.write("host all all 0.0.0.0/0 scram-sha-256\n")
        server.start()
        subprocess.run(
            [*prefix, str(bindir / "createdb"), "-h", host, "-p", str(port), "-U", user, PG_DB],
            check=True,
            capture_output=True,
            env={**os.environ, "PGPASSWORD": password},
        )
        return server

    def start(self) -> None:
        bindir = postgres_bin()
        assert bindir is not None
        log = open(self.root / "postgres.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                *self.prefix,
                *_as_postgres(),
                str(bindir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-c",
                f"listen_addresses={self.host}",
                "-c",
                "unix_socket_directories=",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        bindir = postgres_bin()
        assert bindir is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {(self.root / 'postgres.log').read_text()[-800:]}")
            probe = [
                *self.prefix,
                str(bindir / "pg_isready"),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-t",
                "1",
            ]
            if subprocess.run(probe, capture_output=True).returncode == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"postgres on {self.host}:{self.port} not ready after {timeout}s")
            time.sleep(0.1)

    def stop(self) -> None:
        """Fast shutdown (SIGINT: clients are disconnected, the data stays)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def postgres_server(host: str, port: int, password: str = "wave-test-pw") -> Iterator[Postgres]:
    server = Postgres.create(host, port, password)
    try:
        yield server
    finally:
        server.destroy()


@dataclass
class Redis:
    root: Path
    host: str
    port: int
    password: str | None = None
    prefix: Sequence[str] = ()
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise FileNotFoundError("redis-server is not installed (apt-get install redis-server)")
        cmd = [
            *self.prefix,
            exe,
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.root),
            "--protected-mode",
            "no",
        ]
        if self.password:
            cmd += ["--requirepass", self.password]
        log = open(self.root / "redis.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(self.root / 'redis.log').read_text()[-500:]}")
            probe = subprocess.run(
                [*self.prefix, "redis-cli", "-h", self.host, "-p", str(self.port), "--no-auth-warning"]
                + (["-a", self.password] if self.password else [])
                + ["ping"],
                capture_output=True,
                text=True,
            )
            if "PONG" in probe.stdout:
                return
            if time.monotonic() > deadline:
                raise TimeoutError("redis-server did not answer PING")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None
