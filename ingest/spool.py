"""Append-only disk spool for MQTT messages that Redis could not take.

While Redis is unreachable, ingest appends each batch here, fsyncs it, and only then
acknowledges it to the broker. When Redis is back the records are replayed in the order
they were written; a record counts as removed only once Redis took it (a cursor file
is advanced after each replayed chunk; a fully replayed segment file is deleted).

Layout of ``<var_dir>/spool/<client id>/``:

- ``<sequence>.seg``: segments; each process start opens a new one, so a record torn by
  a crash is always at the end of a segment and is skipped there (it was never
  acknowledged, so the broker delivers it again).
- ``cursor``: ``<segment name> <byte offset>`` of the first record not yet replayed.
- ``lock``: held with ``flock`` so two processes never share one spool.

A record is ``b"GS"``, body length (u32), CRC-32 of the body (u32), then the body:
received time in epoch ms (i64), QoS (u8), topic length (u16), topic bytes, payload.
The original receive time is kept, so a replayed message has the same identity as
its first try and the dedupe in Redis drops it when that try got through.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MAGIC = b"GS"
_HEAD = struct.Struct(">2sII")
_BODY = struct.Struct(">qBH")
SEGMENT_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_BYTES = 1024 * 1024 * 1024


class SpoolError(Exception):
    """The spool directory cannot be used (locked by another process, not writable)."""


class SpoolFull(SpoolError):
    """Appending would pass the size bound; the caller must not acknowledge the batch."""


@dataclass(frozen=True)
class SpoolRecord:
    topic: bytes
    payload: bytes
    received_ms: int
    qos: int


@dataclass(frozen=True)
class _Position:
    segment: str
    offset: int


def encode_record(rec: SpoolRecord) -> bytes:
    if len(rec.topic) > 0xFFFF:
        raise ValueError(f"topic of {len(rec.topic)} bytes is too long to spool")
    body = _BODY.pack(rec.received_ms, rec.qos, len(rec.topic)) + rec.topic + rec.payload
    return _HEAD.pack(MAGIC, len(body), zlib.crc32(body)) + body


def _read_records(path: Path, offset: int) -> Iterator[tuple[SpoolRecord, int]]:
    """Records of one segment from ``offset``, each with the offset just after it.

    Stops at the end, or at a torn or damaged record (logged when bytes follow it).
    """
    with open(path, "rb") as fh:
        fh.seek(offset)
        pos = offset
        while True:
            head = fh.read(_HEAD.size)
            if not head:
                return
            if len(head) < _HEAD.size:
                log.warning("spool %s: torn record header at byte %d skipped", path.name, pos)
                return
            magic, length, crc = _HEAD.unpack(head)
            body = fh.read(length) if magic == MAGIC else b""
            if magic != MAGIC or len(body) < length or zlib.crc32(body) != crc:
                rest = path.stat().st_size - pos
                log.error(
                    "spool %s: damaged or torn record at byte %d; %d bytes from there are "
                    "not replayed (kept in the file until the segment is replayed)",
                    path.name,
                    pos,
                    rest,
                )
                return
            received_ms, qos, topic_len = _BODY.unpack_from(body)
            start = _BODY.size
            topic = body[start : start + topic_len]
            payload = body[start + topic_len :]
            pos += _HEAD.size + length
            yield SpoolRecord(topic, payload, received_ms, qos), pos


def safe_name(client_id: str) -> str:
    """A client id as a directory name (MQTT allows characters a path does not)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", client_id) or "_"


class Spool:
    """One ingest process's spool; used from one thread (the ingest writer)."""

    def __init__(self, directory: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise SpoolError(f"spool directory {self.dir} is not usable: {exc}") from exc
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            raise SpoolError(
                f"spool {self.dir} is in use by another process with the same client id"
            ) from None
        self._cursor_path = self.dir / "cursor"
        self._cursor = self._load_cursor()
        self._drop_replayed()
        segs = self._segments()
        # Numbers only grow, even past deleted segments, so the cursor never points ahead.
        last = max([int(p.stem) for p in segs] + [self._cursor_seq()])
        self._next_seq = last + 1
        self._write_path: Path | None = None
        self._size = sum(p.stat().st_size for p in segs)
        self._has_data = any(p.stat().st_size > self._start_of(p) for p in segs)
        if self._has_data:
            log.warning(
                "spool %s holds %d bytes in %d segments from before; replaying when Redis "
                "takes them",
                self.dir,
                self._size,
                len(segs),
            )

    # --- state ---
    def _segments(self) -> list[Path]:
        return sorted(
            (p for p in self.dir.glob("*.seg") if p.stem.isdigit()), key=lambda p: int(p.stem)
        )

    def _load_cursor(self) -> _Position | None:
        try:
            name, off = self._cursor_path.read_text().split()
            return _Position(name, int(off))
        except (OSError, ValueError):
            return None

    def _save_cursor(self, pos: _Position) -> None:
        tmp = self._cursor_path.with_suffix(".tmp")
        with open(tmp, "w") as fh:
            fh.write(f"{pos.segment} {pos.offset}\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self._cursor_path)
        self._cursor = pos

    def _cursor_seq(self) -> int:
        if self._cursor is None:
            return 0
        try:
            return int(Path(self._cursor.segment).stem)
        except ValueError:
            return 0

    def _drop_replayed(self) -> None:
        """Delete segments before the cursor's (they were replayed before a restart)."""
        for p in self._segments():
            if int(p.stem) < self._cursor_seq():
                p.unlink()

    @property
    def size_bytes(self) -> int:
        return self._size

    def pending(self) -> bool:
        """Whether any record waits for replay (no disk access: the fast path asks often)."""
        return self._has_data

    def _start_of(self, seg: Path) -> int:
        c = self._cursor
        return c.offset if c is not None and c.segment == seg.name else 0

    # --- append ---
    def append(self, records: Iterable[SpoolRecord]) -> int:
        """Write records and fsync them; returns bytes written.

        Raises :class:`SpoolFull` (nothing written) when the bound would be passed.
        """
        data = b"".join(encode_record(r) for r in records)
        if not data:
            return 0
        if self._size + len(data) > self.max_bytes:
            raise SpoolFull(
                f"spool {self.dir} is full ({self._size} of {self.max_bytes} bytes); "
                "messages stay unacknowledged on the broker until Redis is back"
            )
        path = self._writable(len(data))
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._size += len(data)
        self._has_data = True
        return len(data)

    def _writable(self, incoming: int) -> Path:
        """The segment to append to; a new one per process start and past SEGMENT_BYTES."""
        p = self._write_path
        if p is None or not p.exists() or p.stat().st_size + incoming > SEGMENT_BYTES:
            p = self.dir / f"{self._next_seq:012d}.seg"
            self._next_seq += 1
            p.touch()
            # The new name must survive a power cut too, not only its contents.
            dfd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
            self._write_path = p
        return p

    # --- replay ---
    def read(self, limit: int) -> tuple[list[SpoolRecord], _Position | None]:
        """Up to ``limit`` records from the oldest not replayed, and where they end."""
        out: list[SpoolRecord] = []
        end: _Position | None = None
        for seg in self._segments():
            for rec, after in _read_records(seg, self._start_of(seg)):
                out.append(rec)
                end = _Position(seg.name, after)
                if len(out) >= limit:
                    return out, end
            if out:
                # One segment per chunk keeps the cursor a single position.
                return out, end
            self._retire(seg)
        self._has_data = False
        return out, end

    def commit(self, end: _Position) -> None:
        """Redis took every record up to ``end``: never replay them again."""
        self._save_cursor(end)
        seg = self.dir / end.segment
        if seg.exists() and seg.stat().st_size <= end.offset:
            self._retire(seg)

    def _retire(self, seg: Path) -> None:
        """Delete a segment whose records are all replayed (or unreadable past the cursor)."""
        if seg == self._write_path:
            self._write_path = None
        with contextlib.suppress(FileNotFoundError):
            size = seg.stat().st_size
            start = self._start_of(seg)
            if size > start:
                # A damaged tail is moved aside, not deleted: nothing is thrown away.
                seg.rename(seg.with_suffix(".damaged"))
                log.error("spool %s: unreadable tail kept as %s", seg.name, seg.stem + ".damaged")
            else:
                seg.unlink()
            self._size = max(0, self._size - size)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
