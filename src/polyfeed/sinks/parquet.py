"""Parquet sink (pyarrow; the optional extra ``polyfeed[parquet]``): rotated files, one schema per
event type.

Layout under the target folder::

    {event_type}/{event_type}-{start}-{n}.parquet   closed files (readable)
    {event_type}/...parquet.partial                  the files being written
    state.json                                       last durable times (for the downtime gap)

Each event type has its own schema: the event's own fields as typed columns (strings stay
strings, as on the wire; a field whose wire type varies becomes a string; nested entries become
lists of structs), plus the recording's columns ``rec_seq`` (recording order, continued across
runs), ``rec_event_type``, ``rec_received`` (epoch seconds), ``rec_server_ts`` (epoch ms or
null), ``rec_assets`` and ``rec_json`` (the event as JSON, what a replay decodes). Gaps are
``gap`` files with ``started``, ``ended`` (epoch seconds) and ``assets``.

A Parquet file is readable only once closed (its footer written). Files rotate every
``rotate_seconds`` of receive time or ``rotate_rows`` rows, so a ``kill -9`` loses at most the
files being written (up to ``rotate_seconds``), and the next run's downtime gap starts at the
last rotation: the loss is inside a recorded gap. A graceful stop closes every file. Writes run
in the sink's own worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from polyfeed.errors import ConfigError, SinkError, SinkUnavailableError
from polyfeed.sinks.base import _CLASSES, Record, Resume, SessionInfo

logger = logging.getLogger("polyfeed.record")

T = TypeVar("T")

Convert = Callable[[Any], Any]

_RECORD_FIELDS: list[tuple[str, pa.DataType]] = [
    ("rec_seq", pa.int64()),
    ("rec_event_type", pa.string()),
    ("rec_received", pa.float64()),
    ("rec_server_ts", pa.int64()),
    ("rec_assets", pa.list_(pa.string())),
    ("rec_json", pa.string()),
]


def _identity(value: Any) -> Any:
    return value


def _stringify(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


def _arrow_type(info: msgspec.inspect.Type) -> tuple[pa.DataType, Convert]:
    """The Arrow type for a msgspec field type, and how to convert decoded JSON values to it."""
    match info:
        case msgspec.inspect.StrType() | msgspec.inspect.LiteralType():
            return pa.string(), _stringify
        case msgspec.inspect.BoolType():
            return pa.bool_(), _identity
        case msgspec.inspect.IntType():
            return pa.int64(), _identity
        case msgspec.inspect.FloatType():
            return pa.float64(), _identity
        case msgspec.inspect.UnionType(types=types):
            real = [t for t in types if not isinstance(t, msgspec.inspect.NoneType)]
            if len(real) == 1:
                return _arrow_type(real[0])
            return pa.string(), _stringify
        case (
            msgspec.inspect.ListType(item_type=item) | msgspec.inspect.VarTupleType(item_type=item)
        ):
            item_type, convert_item = _arrow_type(item)

            def convert_list(value: Any) -> Any:
                return None if value is None else [convert_item(v) for v in value]

            return pa.list_(item_type), convert_list
        case msgspec.inspect.StructType(fields=fields):
            columns = [(f.encode_name, *_arrow_type(f.type)) for f in fields]

            def convert_struct(value: Any) -> Any:
                if value is None:
                    return None
                return {name: convert(value.get(name)) for name, _, convert in columns}

            return pa.struct([(name, kind) for name, kind, _ in columns]), convert_struct
        case _:
            return pa.string(), _stringify


@dataclass(frozen=True, slots=True)
class _EventSchema:
    schema: pa.Schema
    columns: tuple[tuple[str, Convert], ...]


def _event_schema(event_type: str) -> _EventSchema:
    cls = _CLASSES.get(event_type)
    fields: list[tuple[str, pa.DataType]] = list(_RECORD_FIELDS)
    columns: list[tuple[str, Convert]] = []
    if cls is not None:
        for field in msgspec.inspect.type_info(cls).fields:  # type: ignore[attr-defined]
            kind, convert = _arrow_type(field.type)
            fields.append((field.encode_name, kind))
            columns.append((field.encode_name, convert))
    return _EventSchema(pa.schema(fields), tuple(columns))


class _OpenFile:
    __slots__ = ("final", "first_received", "partial", "rows", "writer")

    def __init__(self, final: Path, writer: pq.ParquetWriter, first_received: float) -> None:
        self.final = final
        self.partial = final.with_name(final.name + ".partial")
        self.writer = writer
        self.rows = 0
        self.first_received = first_received


class ParquetSink:
    """Records into rotated Parquet files under ``folder`` (see the module docstring)."""

    name = "parquet"

    def __init__(
        self,
        folder: str | Path,
        *,
        rotate_seconds: float = 60.0,
        rotate_rows: int = 500_000,
        compression: str = "zstd",
    ) -> None:
        if not rotate_seconds > 0 or rotate_rows < 1:
            raise ConfigError("rotate_seconds must be > 0 and rotate_rows >= 1")
        self.folder = Path(folder)
        self.rotate_seconds = rotate_seconds
        self.rotate_rows = rotate_rows
        self.compression = compression
        self._executor: ThreadPoolExecutor | None = None
        self._schemas: dict[str, _EventSchema] = {}
        self._files: dict[str, _OpenFile] = {}
        self._session: SessionInfo | None = None
        self._seq = 0
        self._pending_received: float | None = None
        self._pending_server_ts: int | None = None
        self._state: dict[str, Any] = {}
        self._counter = 0
        self.files_closed = 0

    def __repr__(self) -> str:
        state = "open" if self._executor is not None else "closed"
        return (
            f"<ParquetSink {self.folder} {state} open_files={len(self._files)} "
            f"closed_files={self.files_closed} seq={self._seq}>"
        )

    async def _call(self, fn: Callable[[], T]) -> T:
        executor = self._executor
        if executor is None:
            raise SinkError(f"{self.folder}: sink is not open")
        return await asyncio.get_running_loop().run_in_executor(executor, fn)

    async def open(self, session: SessionInfo) -> Resume | None:
        """Create the folder; what the previous run left in ``state.json``."""
        if self._executor is not None:
            raise SinkError(f"{self.folder}: sink is already open")
        self._session = session
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="polyfeed-parquet")
        try:
            return await self._call(self._open)
        except BaseException as exc:
            await self._shutdown()
            if isinstance(exc, OSError | ValueError):
                raise SinkError(f"{self.folder}: cannot open recording: {exc}") from exc
            raise

    def _open(self) -> Resume | None:
        self.folder.mkdir(parents=True, exist_ok=True)
        leftovers = sorted(self.folder.glob("*/*.partial"))
        if leftovers:
            # A killed run's unfinished files (no footer, unreadable): their time is in the gap.
            logger.warning("parquet: %d unfinished files of a killed run ignored", len(leftovers))
        state_path = self.folder / "state.json"
        previous: dict[str, Any] = {}
        if state_path.exists():
            previous = json.loads(state_path.read_text())
        assert self._session is not None
        self._seq = int(previous.get("seq", 0))
        self._state = {
            "ids": list(self._session.ids),
            "started": self._session.started,
            "seq": self._seq,
        }
        self._save_state()
        if not previous:
            return None
        times = [previous[k] for k in ("last_received", "ended", "started") if previous.get(k)]
        last_seen = max(times)
        if previous.get("last_server_ts"):
            last_seen = min(last_seen, previous["last_server_ts"] / 1000.0)
        return Resume(last_seen=last_seen, assets=tuple(previous.get("ids", ())))

    def _save_state(self) -> None:
        path = self.folder / "state.json"
        partial = path.with_name("state.json.partial")
        partial.write_text(json.dumps(self._state))
        os.replace(partial, path)

    async def write(self, records: Sequence[Record]) -> None:
        """Append the batch to each event type's open file (rotating first when due)."""
        try:
            await self._call(lambda: self._write(records))
        except OSError as exc:
            raise SinkUnavailableError(f"{self.folder}: {exc}") from exc
        except (pa.ArrowException, ValueError, TypeError) as exc:
            raise SinkError(f"{self.folder}: {exc}") from exc

    def _write(self, records: Sequence[Record]) -> None:
        # Numbered in batch order before grouping by type: rec_seq is the recording order.
        by_type: dict[str, list[tuple[int, Record]]] = {}
        for seq, record in enumerate(records, start=self._seq + 1):
            by_type.setdefault(record.event_type, []).append((seq, record))
        newest = max(record.received for record in records)
        if any(
            newest - f.first_received >= self.rotate_seconds or f.rows >= self.rotate_rows
            for f in self._files.values()
        ):
            self._rotate()
        for event_type, group in by_type.items():
            schema = self._schemas.get(event_type)
            if schema is None:
                schema = self._schemas[event_type] = _event_schema(event_type)
            rows = []
            for seq, record in group:
                body = msgspec.json.decode(record.json) if schema.columns else {}
                row = {
                    "rec_seq": seq,
                    "rec_event_type": record.event_type,
                    "rec_received": record.received,
                    "rec_server_ts": record.server_ts,
                    "rec_assets": list(record.assets),
                    "rec_json": record.json.decode("utf-8", errors="replace"),
                }
                for name, convert in schema.columns:
                    row[name] = convert(body.get(name))
                rows.append(row)
            table = pa.Table.from_pylist(rows, schema=schema.schema)
            self._file(event_type, schema, group[0][1].received).writer.write_table(table)
            self._files[event_type].rows += len(rows)
        self._seq += len(records)
        server = [r.server_ts for r in records if r.server_ts is not None and r.server_ts > 10**11]
        self._pending_received = max(self._pending_received or newest, newest)
        if server:
            self._pending_server_ts = max(self._pending_server_ts or 0, *server)

    def _file(self, event_type: str, schema: _EventSchema, received: float) -> _OpenFile:
        current = self._files.get(event_type)
        if current is not None:
            return current
        folder = self.folder / event_type
        folder.mkdir(exist_ok=True)
        self._counter += 1
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(received))
        final = folder / f"{event_type}-{stamp}-{self._seq:012d}-{self._counter}.parquet"
        partial = final.with_name(final.name + ".partial")
        writer = pq.ParquetWriter(partial, schema.schema, compression=self.compression)
        opened = self._files[event_type] = _OpenFile(final, writer, received)
        return opened

    def _rotate(self) -> None:
        """Close every open file (footer written, renamed to ``.parquet``), then save state."""
        files, self._files = self._files, {}
        for opened in files.values():
            opened.writer.close()
            os.replace(opened.partial, opened.final)
            self.files_closed += 1
        if self._pending_received is not None:
            self._state["last_received"] = self._pending_received
        if self._pending_server_ts is not None:
            self._state["last_server_ts"] = self._pending_server_ts
        self._state["seq"] = self._seq
        self._save_state()

    async def aclose(self, ended: float) -> None:
        """Close every file and record the run's end."""
        if self._executor is None:
            return
        try:
            await self._call(lambda: self._close(ended))
        except (OSError, pa.ArrowException) as exc:
            raise SinkError(f"{self.folder}: closing: {exc}") from exc
        finally:
            await self._shutdown()

    def _close(self, ended: float) -> None:
        self._state["ended"] = ended
        self._rotate()

    async def _shutdown(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)


def read_rows(folder: str | Path) -> list[tuple[int, str, list[str], float, str]]:
    """Every closed file's rows under ``folder`` as ``(rec_seq, event_type, assets, received,
    json)``, in recording order (what :class:`polyfeed.replay.Replay` plays). Blocking: call it
    from a worker thread. Unfinished (``.partial``) files are skipped."""
    columns = ["rec_seq", "rec_event_type", "rec_assets", "rec_received", "rec_json"]
    rows: list[tuple[int, str, list[str], float, str]] = []
    for path in sorted(Path(folder).glob("*/*.parquet")):
        table = pq.read_table(path, columns=columns)
        rows.extend(zip(*(table.column(name).to_pylist() for name in columns), strict=True))
    rows.sort(key=lambda row: row[0])
    return rows
