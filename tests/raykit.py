"""A real local Ray cluster for the tests that run jobs on Ray (started once per test session).

The cluster is a ``ray start --head`` subprocess with 2 CPUs (this machine's cores), no dashboard, in a
temporary folder; tests join it by address (``--ray ADDRESS`` on the CLI, or ``connect(address)``).
Without the ``ray`` extra the tests that need it skip outside CI and fail in CI.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest
from livekit import free_port

NUM_CPUS = 2


def ray_or_skip() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("ray is not installed (pip install 'callwise[ray]')")


def start_cluster() -> Iterator[str]:
    """Start a head node; yield its address (``127.0.0.1:PORT``); stop it afterwards.

    The head runs as ``ray start --block`` in its own process group, and only that group is stopped
    at the end (``ray stop`` would stop every Ray cluster on the machine)."""
    ray_or_skip()
    ray_bin = str(Path(sys.executable).with_name("ray"))
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="cw-ray-")  # short: Ray's socket paths must stay under 107 characters
    # a test cluster on loopback, without token authentication (the tests' clients and the CLI
    # subprocesses they start inherit the setting)
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    log = open(Path(tmp) / "head.log", "wb")
    head = subprocess.Popen([ray_bin, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
                             f"--num-cpus={NUM_CPUS}", "--include-dashboard=false", "--disable-usage-stats",
                             f"--temp-dir={tmp}"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list(Path(tmp).glob("session_*/sockets/raylet*")):
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray head did not start: {(Path(tmp) / 'head.log').read_text()[-2000:]}")
            time.sleep(0.2)
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        try:
            import ray

            ray.shutdown()  # this process's connection first, so its core worker does not see the head die
        except ImportError:
            pass
        try:
            os.killpg(head.pid, signal.SIGTERM)
            head.wait(timeout=60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(head.pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
