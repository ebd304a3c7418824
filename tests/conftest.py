"""Shared fixtures: the real shared datasets and a writer of small input files."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Callable, Union

import pytest

#: In CI the repository is cloned next to ``shared/``; locally it is ``/work/main`` beside ``/work/shared``.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

Content = Union[str, bytes]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real datasets (``../shared/data`` relative to the repo); skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent (the repo must be cloned next to shared/)")
    return SHARED_DATA


def _write(base: Path, name: str, content: Content, gz: bool | None = None) -> Path:
    """Write ``content`` (text is UTF-8 encoded) to ``base / name``; gzip it when ``gz`` is True or,
    by default, when the name ends in ``.gz``. Parent folders are created."""
    path = base / name
    path.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode("utf-8") if isinstance(content, str) else content
    if gz is None:
        gz = name.endswith(".gz")
    if gz:
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[..., Path]:
    """``write_file(name, content, gz=None) -> Path``: a small file in ``tmp_path``.

    ``content`` is text (written as UTF-8) or bytes; the file is gzipped when the name ends in
    ``.gz`` (or when ``gz=True``; ``gz=False`` writes raw bytes under a ``.gz`` name).
    """

    def write(name: str, content: Content, gz: bool | None = None) -> Path:
        return _write(tmp_path, name, content, gz)

    return write


@pytest.fixture
def long_csv_text() -> str:
    """A small valid long table: 2 prompts x 2 models, canonical column names."""
    return (
        "prompt_id,task,model,quality,cost\n"
        "p1,t,a,1,0.01\n"
        "p1,t,b,0,0.02\n"
        "p2,t,a,0,0.01\n"
        "p2,t,b,1,0.02\n"
    )


@pytest.fixture(scope="session")
def ray_address():
    """The address of a real local Ray cluster (2 CPUs) shared by the session's Ray tests."""
    from raykit import start_cluster

    yield from start_cluster()
