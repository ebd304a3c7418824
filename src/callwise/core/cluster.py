"""Ray, for the jobs that outgrow one process: one connection per command, imported lazily.

``--ray`` on the command line (``collect``, ``run``, ``bench``, ``plan``) takes an optional address:
``--ray`` alone starts a local Ray cluster for the command (or joins the one ``RAY_ADDRESS`` names, as
Ray itself does); ``--ray HOST:PORT``, ``--ray ray://HOST:PORT`` or ``--ray auto`` joins an existing
one. Ray is an optional extra (``pip install 'callwise[ray]'``); nothing here imports it until a
command asks for it.
"""

from __future__ import annotations

import os
import re
import socket
from typing import Any, Sequence

from .errors import CallwiseError

#: The address meaning "start a local cluster" (what a bare ``--ray`` becomes).
LOCAL = "local"

_ADDRESS = re.compile(r"^(auto|local|ray://\S+|\[[0-9a-fA-F:]+\]:\d+|[\w.-]+:\d+)$")


def looks_like_address(token: str) -> bool:
    """Whether ``token`` is a Ray address (``auto``, ``local``, ``ray://…``, ``host:port``)."""
    return bool(_ADDRESS.match(token))


def normalise_argv(argv: Sequence[str]) -> list[str]:
    """Give a bare ``--ray`` its default value, so ``--ray`` works with or without an address.

    A ``--ray`` followed by nothing, by another option or by something that is not an address (a
    data path) becomes ``--ray local``; ``--ray ADDRESS`` and ``--ray=ADDRESS`` stay as they are.
    """
    out: list[str] = []
    args = list(argv)
    for i, a in enumerate(args):
        out.append(a)
        if a == "--":
            out.extend(args[i + 1:])
            break
        if a == "--ray" and (i + 1 == len(args) or not looks_like_address(args[i + 1])):
            out.append(LOCAL)
    return out


def ray_module() -> Any:
    """The ``ray`` package, or a clear error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise CallwiseError("--ray needs Ray, which is not installed: pip install 'callwise[ray]'") from None
    return ray


def check_reachable(address: str | None) -> None:
    """Fail fast, naming the address, when no Ray head listens there (``ray.init`` would wait minutes)."""
    if address in (None, LOCAL):
        address = os.environ.get("RAY_ADDRESS") or None
    if address is None or address == "auto":
        return
    hostport = address.split("://", 1)[-1].rsplit("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as e:
        raise CallwiseError(f"cannot reach Ray at {address}: {e.strerror or e}; start a head node there "
                            "(ray start --head) or give its address (--ray HOST:PORT or RAY_ADDRESS)") from None


#: The address this process is connected to (None: a local cluster it started).
_connected: list[str | None] = []


def connect(address: str | None = LOCAL, *, num_cpus: int | None = None) -> Any:
    """Connect this process to Ray and return the ``ray`` module (idempotent within a process).

    ``address`` None or ``"local"``: a local cluster started for this process (``num_cpus`` caps
    it; default all cores), unless ``RAY_ADDRESS`` names one to join. Anything else is passed to
    ``ray.init(address=...)``. Workers import callwise from their own environment, so on a remote
    cluster the nodes need it installed (docs/scale.md).
    """
    ray = ray_module()
    want = None if address in (None, LOCAL) else address
    if ray.is_initialized():
        if _connected and _connected[0] == want:
            return ray
        ray.shutdown()  # one Ray connection per process: a command asking for another cluster gets it
    check_reachable(address)
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
    if address in (None, LOCAL) and not os.environ.get("RAY_ADDRESS"):
        kwargs["num_cpus"] = num_cpus
    else:
        kwargs["address"] = address if address not in (None, LOCAL) else os.environ["RAY_ADDRESS"]
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = kwargs.get("address", "a local cluster")
        raise CallwiseError(f"cannot connect to Ray at {where}: {e}") from None
    _connected[:] = [want]
    return ray
