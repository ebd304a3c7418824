"""A real local Ray cluster for the tests that run jobs on Ray (started once per test session).

The cluster is a ``ray start --head`` subprocess with 2 CPUs (this machine's cores), no dashboard, in a
temporary folder; tests join it by address (``--ray ADDRESS`` on the CLI, or ``connect(address)``).
Without the ``ray`` extra the tests that need it skip outside CI and fail in CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
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
    """Start a head node; yield its address (``127.0.0.1:PORT``); stop it afterwards."""
    ray_or_skip()
    ray_bin = str(Path(sys.executable).with_name("ray"))
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="callwise-ray-")
    # a test cluster on loopback, without token authentication (the tests' clients and the CLI
    # subprocesses they start inherit the setting)
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    subprocess.run([ray_bin, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", f"--num-cpus={NUM_CPUS}", "--include-dashboard=false",
                    "--disable-usage-stats", f"--temp-dir={tmp}"], check=True, env=env, capture_output=True, timeout=120)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray_bin, "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)
