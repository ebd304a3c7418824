"""Reading raw files safely: gzip checked by its magic bytes, UTF-8 decoded strictly, pickles
refused unless trusted, empty files rejected. Every loader reads through these helpers.

Writing: :func:`atomic_write` (temp file in the same folder, then rename, so a crash never leaves
a half-written file) and :func:`json_default` (numpy scalars and arrays for ``json.dumps``) serve
every writer: Parquet tables, policy files, the feature cache and bench results."""

from __future__ import annotations

import gzip
import io
import json
import os
import tempfile
import zlib
from pathlib import Path
from typing import IO, Any, Callable

import numpy as np
import pandas as pd

from .errors import DataError, FormatError

GZIP_MAGIC = b"\x1f\x8b"
PICKLE_SUFFIXES = (".pkl", ".pickle")


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Create ``path`` by calling ``write`` on a binary temp file beside it, then renaming it into place.

    The parent folder is created; the file gets the usual permissions (0666 minus the umask, not
    the temp file's 0600); on any error the temp file is removed and ``path`` is untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_all(files: list[tuple[Path, Callable[[IO[bytes]], None]]]) -> None:
    """Write several files together or not at all: every one to a temp file beside it first; only when
    all are written are they renamed into place (a full disk leaves the old files as they were)."""
    temps: list[tuple[str, Path]] = []
    try:
        umask = os.umask(0)
        os.umask(umask)
        for path, write in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            temps.append((tmp, path))
            with os.fdopen(fd, "wb") as f:
                write(f)
            os.chmod(tmp, 0o666 & ~umask)
        for tmp, path in temps:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)
        raise


def json_default(o: Any) -> Any:
    """``json.dumps(default=...)`` for numpy scalars and arrays; anything else is a TypeError."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def base_suffix(path: Path) -> str:
    """The file's suffix with a trailing ``.gz`` removed: ``a.csv.gz`` -> ``.csv``."""
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return Path(name).suffix


def read_bytes(path: Path, what: str = "recorded outcomes") -> bytes:
    """The file's bytes, gunzipped when the name ends in ``.gz`` (which must then be gzip)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError("no such file", file=str(path)) from None
    except IsADirectoryError:
        raise DataError("is a directory, expected a file", file=str(path)) from None
    if path.name.lower().endswith(".gz"):
        if raw[:2] != GZIP_MAGIC:
            raise FormatError(f"named .gz but is not gzip (first bytes {raw[:4]!r}, expected {GZIP_MAGIC!r})",
                              file=str(path))
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise FormatError(f"corrupt or truncated gzip data: {e}", file=str(path)) from None
    if not raw.strip():
        raise DataError(f"empty file: expected {what}", file=str(path))
    return raw


def is_pickle(raw: bytes) -> bool:
    """Pickle protocol 2+ starts with 0x80 and the protocol number."""
    return len(raw) > 2 and raw[0] == 0x80 and 2 <= raw[1] <= 5


def read_text(path: Path, what: str = "recorded outcomes") -> str:
    """The file's text, strictly UTF-8; a bad byte is reported with its line and offset."""
    raw = read_bytes(path, what)
    if is_pickle(raw):
        raise FormatError("is a pickle, not text; load pickles only through a RouterBench loader with "
                          "--trust-pickle", file=str(path))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DataError(f"invalid UTF-8 at byte {e.start} (line {line}): {raw[e.start:e.start + 4]!r}; "
                        "expected UTF-8 text", file=str(path), row=f"line {line}") from None


def read_csv(path: Path, header_only: bool = False, text_columns: tuple[str, ...] = (),
             wanted: Callable[[str], bool] | None = None) -> pd.DataFrame:
    """A CSV file (optionally gzipped) as a DataFrame of its original columns.

    ``text_columns`` are read as text, not type-guessed (ids like ``001`` must stay ``001``).
    ``wanted``: parse only the columns it accepts (the file's whole header is ``attrs["header"]``).
    """
    text = read_text(path)
    try:
        df = pd.read_csv(io.StringIO(text), nrows=0 if header_only else None, low_memory=False,
                         dtype={c: str for c in text_columns} or None,
                         usecols=None if wanted is None else (lambda c: wanted(str(c))))
        if wanted is not None:
            df.attrs["header"] = [str(c) for c in pd.read_csv(io.StringIO(text), nrows=0).columns]
    except pd.errors.EmptyDataError:
        raise DataError("empty file: expected a CSV header and rows", file=str(path)) from None
    except pd.errors.ParserError as e:
        raise FormatError(f"not a readable CSV: {e}", file=str(path)) from None
    if not header_only and len(df) == 0:
        raise DataError("empty file: a header but no rows", file=str(path))
    return df


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type (``null``, ``boolean``, ``number``, ``string``, ``array``,
    ``object``), for messages that say what a file holds."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def read_jsonl(path: Path) -> pd.DataFrame:
    """JSON lines (one object per line; blank lines skipped) or one JSON list of objects.

    Adds a ``__line__`` column for error messages (an internal column: callers drop it before a
    user sees column names): each record's line number for JSON lines, or its 0-based index in a
    JSON list, where ``df.attrs["unit"]`` is ``"record"`` (``"line"`` otherwise). A file holding
    one JSON object spread over several lines (a configuration or price file, not records) is a
    :class:`FormatError` that says so, not an "invalid JSON" at its first line.
    """
    text = read_text(path)
    stripped = text.lstrip()
    unit = "line"
    if stripped.startswith("{") and "\n" in stripped.strip() and not _parses(stripped.split("\n", 1)[0]):
        # the first line is no complete object: one JSON document over several lines, not JSON lines
        try:
            whole = json.loads(text)
        except json.JSONDecodeError as e:
            raise FormatError(f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg} (the file is one JSON "
                              "document over several lines; expected JSON lines or a JSON list of objects)",
                              file=str(path)) from None
        keys = list(whole)[:6] if isinstance(whole, dict) else []
        raise FormatError(f"holds one JSON object (keys {keys}{' ...' if len(whole) > 6 else ''}), not records: "
                          "expected JSON lines (one object per line) or a JSON list of objects", file=str(path))
    if stripped.startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as e:
            raise FormatError(f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}", file=str(path)) from None
        if not isinstance(records, list):
            raise FormatError("expected a JSON list of objects", file=str(path))
        bad = next((i for i, r in enumerate(records) if not isinstance(r, dict)), None)
        if bad is not None:
            raise FormatError(f"expected a JSON list of objects, but the record is a JSON {json_type(records[bad])}",
                              file=str(path), row=f"record {bad}")
        lines = list(range(len(records)))
        unit = "record"
    else:
        records, lines = [], []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise FormatError(f"invalid JSON: {e.msg}", file=str(path), row=f"line {n}") from None
            if not isinstance(rec, dict):
                raise FormatError(f"expected a JSON object per line, got {type(rec).__name__}",
                                  file=str(path), row=f"line {n}")
            records.append(rec)
            lines.append(n)
    if not records:
        raise DataError("empty file: no records", file=str(path))
    df = pd.DataFrame.from_records(records)
    df["__line__"] = lines
    df.attrs["unit"] = unit
    return df


def read_parquet(path: Path, wanted: Callable[[str], bool] | None = None) -> pd.DataFrame:
    """A Parquet file as a DataFrame, text columns as categoricals. ``wanted``: read only the columns
    it accepts (the others are never decoded; the file's whole header is ``attrs["header"]``)."""
    raw = read_bytes(path)
    if raw[:4] != b"PAR1":
        raise FormatError("named .parquet but is not Parquet (no PAR1 magic)", file=str(path))
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(pa.BufferReader(raw))
        # text columns are read dictionary-encoded (pandas categoricals): a prompt repeated once per
        # model and sample is held once, never materialised per row
        header = [f.name for f in pf.schema_arrow]
        cols = None if wanted is None else [c for c in header if wanted(c)]
        text = [f.name for f in pf.schema_arrow if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        df = pq.read_table(pa.BufferReader(raw), columns=cols, read_dictionary=text).to_pandas()
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise FormatError(f"unreadable Parquet: {e}", file=str(path)) from None
    if wanted is not None:
        df.attrs["header"] = header
    if len(df) == 0:
        raise DataError("empty file: the Parquet table has no rows", file=str(path))
    return df


def read_pickle(path: Path, trust: bool) -> pd.DataFrame:
    """A pickled DataFrame (RouterBench's original ``.pkl``). Refused unless ``trust`` is True."""
    if not trust:
        raise FormatError("is a pickle; unpickling runs code stored in the file, so callwise loads pickles "
                          "only when you say you trust the file (--trust-pickle, trust_pickle=True)",
                          file=str(path))
    raw = read_bytes(path)
    try:
        obj = pd.read_pickle(io.BytesIO(raw))
    except Exception as e:
        raise FormatError(f"unreadable pickle: {e}", file=str(path)) from None
    if not isinstance(obj, pd.DataFrame):
        raise FormatError(f"the pickle holds a {type(obj).__name__}, expected a pandas DataFrame", file=str(path))
    if len(obj) == 0:
        raise DataError("empty file: the pickled table has no rows", file=str(path))
    return obj
