"""Start a server process on a free 127.0.0.1 port for a test, and always stop it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(
    command: Sequence[str],
    *,
    ready: Callable[[], bool],
    log: Path,
    timeout: float = 90,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[None]:
    """Run ``command`` until the block ends; enter once ``ready()`` is true.

    ``ready`` may raise while the server is starting. The test fails with the
    server's log when it exits or is not ready within ``timeout`` seconds.
    """
    with open(log, "wb") as out:
        server = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while not _is_ready(ready):
            if server.poll() is not None or time.monotonic() > deadline:
                exited = server.poll() is not None
                state = f"exited ({server.returncode})" if exited else "timed out"
                pytest.fail(f"{command[0]} did not start: {state}\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _is_ready(ready: Callable[[], bool]) -> bool:
    try:
        return ready()
    except Exception:  # not listening yet
        return False


@contextmanager
def langgraph_dev(config: Path, folder: Path, env: Mapping[str, str]) -> Iterator[str]:
    """`langgraph dev` serving ``config`` until the block ends; yields its URL.

    It runs from ``folder`` (the dev server keeps its state in ./.langgraph_api),
    on this checkout's package, with ``env`` over the test's environment less its
    ``INTERCASCADE_*`` variables, so a developer's settings do not leak in.
    """
    import httpx

    port = free_port()
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("INTERCASCADE_")},
        "LANGSMITH_TRACING": "false",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        **env,
    }
    command = [sys.executable, "-m", "langgraph_cli", "dev", "--config", str(config)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--no-browser", "--no-reload"]
    url = f"http://127.0.0.1:{port}"
    with serving(
        command,
        ready=lambda: httpx.get(f"{url}/ok", timeout=1).status_code == 200,
        log=folder / "server.log",
        cwd=folder,
        env=environment,
    ):
        yield url
