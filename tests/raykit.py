"""A real local Ray cluster for the tests that run jobs on Ray (started once per test session).

The cluster is a ``ray start --head`` subprocess with 2 CPUs (this machine's cores), no dashboard, in a
temporary folder; tests join it by address (``--ray ADDRESS`` on the CLI, or ``connect(address)``).
Without the ``ray`` extra the tests that need it skip outside CI and fail in CI.

For the tests that kill a worker mid-task: :func:`worker_processes` finds the worker processes of one
cluster running a task of a given name now (from ``/proc``), :func:`alive` tells whether one still runs.
"""

from __future__ import annotations

import os
import re
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


def disconnect() -> None:
    """Leave the cluster from this process, if connected (a module's tests end so; the session fixture then
    stops the cluster without a connected driver)."""
    try:
        import ray
    except ImportError:
        return
    if ray.is_initialized():
        ray.shutdown()


def cmdline(pid: int | str) -> str:
    """The command line (or process title) of ``pid``, words joined by spaces; ``""`` when it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def parent(pid: int | str) -> str:
    """The parent process id of ``pid`` (``""`` when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[1]  # the field after the state


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def worker_processes(address: str, prefix: str) -> list[int]:
    """Worker processes of the cluster at ``address`` whose title starts with ``prefix`` now (another
    cluster's are not): Ray titles a worker ``ray::<task name>`` while it runs a task, so
    ``prefix="ray::callwise-shard-"`` finds the workers running a shard; a worker's parent is its
    cluster's raylet, whose command line names the cluster's GCS port."""
    gcs = re.compile(rf"--gcs-address=\S+:{address.rsplit(':', 1)[1]}\b")
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and cmdline(d.name).startswith(prefix) and gcs.search(cmdline(parent(d.name))):
            out.append(int(d.name))
    return out
