"""Data files that are one JSON list of records (``.json`` / ``.json.gz``): reading them with clear
errors, and peeking at the first record without reading the whole file (format detection).

Shared by the loaders whose sources ship such lists: :mod:`.mot`, :mod:`.routerdc` and
:mod:`.llmrouter`. Records are named ``record <i>`` with ``i`` the 0-based index in the list (what
``jq '.[i]'`` or ``json.load(f)[i]`` shows).
"""

from __future__ import annotations

import codecs
import gzip
import json
import zlib
from pathlib import Path
from typing import Any

from ..core.errors import DataError, FormatError
from ..core.files import GZIP_MAGIC, json_type, read_text

_SNIFF_LIMIT = 1 << 24  # characters of a file read to find its first record


def is_json_name(path: Path) -> bool:
    """Whether the name ends in ``.json`` or ``.json.gz`` (any case)."""
    name = path.name.lower()
    return name.endswith(".json") or name.endswith(".json.gz")


def json_files(folder: Path) -> list[Path]:
    """The ``.json`` / ``.json.gz`` files directly in ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and is_json_name(p))


def stem_of(path: Path) -> str:
    """The file name without ``.json`` / ``.json.gz``."""
    name = path.name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    return name[:-5] if name.lower().endswith(".json") else name


def _first(buf: str, eof: bool) -> tuple[str, Any] | None:
    """('record', the first object) / ('other', None) / ('broken', None) from the start of a file's
    text, or None to read more."""
    s = buf.lstrip("\ufeff \t\r\n")
    if not s:
        return ("broken", None) if eof else None
    if s[0] != "[":
        return "other", None
    j = 1
    while j < len(s) and s[j] in " \t\r\n":
        j += 1
    if j == len(s):
        return ("broken", None) if eof else None
    if s[j] != "{":
        return "other", None  # an empty list, or a list of non-objects
    try:
        first, _ = json.JSONDecoder().raw_decode(s, j)
    except json.JSONDecodeError:
        return ("broken", None) if eof else None
    return "record", first


def peek_first_record(path: Path) -> tuple[str, Any]:
    """The first record of a JSON-list file, reading only as far as it ends.

    Returns ``('record', obj)`` when the file is a ``.json`` / ``.json.gz`` list whose first element
    is an object; ``('other', None)`` when it is readable but not that (or not so named);
    ``('broken', None)`` when it cannot be read (bad gzip, bad UTF-8, truncated JSON). A first record
    longer than 16M characters is returned as ``('record', <its raw text>)``."""
    if not (path.is_file() and is_json_name(path)):
        return "other", None
    try:
        with open(path, "rb") as raw:
            if path.name.lower().endswith(".gz"):
                if raw.read(2) != GZIP_MAGIC:
                    return "broken", None
                raw.seek(0)
                stream: Any = gzip.GzipFile(fileobj=raw)
            else:
                stream = raw
            decoder = codecs.getincrementaldecoder("utf-8")()
            buf, size = "", 1 << 16
            while True:
                chunk = stream.read(size)
                eof = not chunk
                buf += decoder.decode(chunk, final=eof)
                verdict = _first(buf, eof)
                if verdict is not None:
                    return verdict
                if eof:
                    return "broken", None
                if len(buf) > _SNIFF_LIMIT:
                    return "record", buf
                size *= 2
    except (OSError, EOFError, zlib.error, UnicodeDecodeError):
        return "broken", None


def read_json_list(path: Path, what: str) -> list[Any]:
    """The top-level list of a JSON file (gunzipped when named ``.gz``), checked to be non-empty.

    ``what`` says what the file should hold, for the messages (``"a JSON list of ... records"``)."""
    text = read_text(path, what=what)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise FormatError(f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}; expected {what}",
                          file=str(path)) from None
    if not isinstance(data, list):
        raise DataError(f"the top level is a JSON {json_type(data)}, expected {what}", file=str(path))
    if not data:
        raise DataError(f"no records: the top-level list is empty; expected {what}", file=str(path))
    return data


__all__ = ["is_json_name", "json_files", "json_type", "peek_first_record", "read_json_list", "stem_of"]
