"""``--ray [ADDRESS]``: a bare flag means a local cluster; an address that does not answer fails fast, named."""

from __future__ import annotations

import time

import pytest
from livekit import free_port

from callwise.core.cluster import (
    LOCAL,
    check_reachable,
    looks_like_address,
    normalise_argv,
)
from callwise.core.errors import CallwiseError


@pytest.mark.parametrize("argv, expected", [
    (["bench", "d", "--ray"], ["bench", "d", "--ray", LOCAL]),
    (["bench", "--ray", "d", "--jobs", "2"], ["bench", "--ray", LOCAL, "d", "--jobs", "2"]),
    (["bench", "--ray", "--jobs", "2"], ["bench", "--ray", LOCAL, "--jobs", "2"]),
    (["bench", "--ray", "10.0.0.5:6379", "d"], ["bench", "--ray", "10.0.0.5:6379", "d"]),
    (["bench", "--ray", "ray://head:10001"], ["bench", "--ray", "ray://head:10001"]),
    (["bench", "--ray=auto"], ["bench", "--ray=auto"]),
    (["run", "p.json", "--", "--ray"], ["run", "p.json", "--", "--ray"]),
])
def test_bare_ray_flag_becomes_local(argv: list[str], expected: list[str]) -> None:
    assert normalise_argv(argv) == expected


def test_addresses_are_told_from_paths() -> None:
    assert all(map(looks_like_address, ["auto", "local", "h:1", "[::1]:6379", "ray://x:1"]))
    assert not any(map(looks_like_address, ["data.parquet", "../shared/data", "h:", "h:port"]))


def test_an_address_nobody_listens_on_fails_in_seconds_naming_it() -> None:
    address = f"127.0.0.1:{free_port()}"
    t = time.monotonic()
    with pytest.raises(CallwiseError, match=f"cannot reach Ray at {address}.*ray start --head"):
        check_reachable(address)
    assert time.monotonic() - t < 10
