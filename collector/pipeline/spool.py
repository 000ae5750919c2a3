"""Store-and-forward spool: batches the database cannot take now, kept on local disk.

When TimescaleDB is unreachable or too slow, the pipeline appends batches here and only then
tells the sources they are durable (MQTT acknowledges the broker at that moment). On recovery
it drains the spool oldest first: `peek` the oldest batches, write them to the database, then
`consume` their cursor. A crash between the database write and `consume` re-delivers those
batches, which the idempotent store writer absorbs; nothing acknowledged is ever lost.

On disk, a directory of append-only segment files plus a cursor file:

    000000000007.seg   records back to back, each
                          "SWr\\x01"  magic + framing version (4 bytes)
                          u32 LE      payload length
                          u32 LE      CRC-32 of the length field and the payload
                          payload     one Batch in the spool_codec format
    cursor             "SWc\\x01", u64 segment, u64 offset, u32 CRC-32: everything up to that
                       offset of that segment is consumed (written atomically: tmp, fsync,
                       rename, fsync of the directory)
    lock               flock()ed while a process has the spool open
    quarantine/        copies of corrupted or unreadable records, for a person to look at

Durability: `append` returns only after the segment data (and, for a new segment, the
directory entry) is fsynced, so what it acknowledged survives SIGKILL and power loss. A
crash mid-append leaves a torn tail in the newest segment; `open()` cuts it off (that append
never returned, so its batches were never acknowledged). A record whose CRC fails elsewhere
(bit rot) is skipped, counted in `corrupted_records`, logged and copied to quarantine/; its
neighbours survive because the scan resynchronises on the next magic with a valid CRC.

Sizing: `max_bytes` bounds the segment files on disk. Consumed records stay on disk until
their whole segment is consumed, so up to one segment of the budget can be already drained
data; `spool_bytes_for` turns hours at a rate into bytes.

Thread-safe behind one lock; synchronous on purpose (the pipeline calls it through
`asyncio.to_thread`). Encoding in `append` and decoding in `peek` run outside the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import struct
import threading
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from collector.pipeline.batch import Batch
from collector.pipeline.spool_codec import (
    HEADER_SIZE,
    BatchHeader,
    DecodeError,
    decode,
    encode,
    read_header,
    realistic_batch,
)

log = logging.getLogger(__name__)

MAGIC: Final = b"SWr\x01"
_FRAME = struct.Struct("<4sII")
FRAME_SIZE: Final = _FRAME.size
_LENGTH = struct.Struct("<I")
_MAX_RECORD: Final = 1 << 30
_CURSOR = struct.Struct("<4sQQ")
_CURSOR_MAGIC: Final = b"SWc\x01"
_SUFFIX: Final = ".seg"
_CURSOR_FILE: Final = "cursor"
_LOCK_FILE: Final = "lock"
_QUARANTINE: Final = "quarantine"


class SpoolFull(Exception):
    """The append would take the spool past `max_bytes`; nothing of it was written."""


class SpoolLocked(Exception):
    """Another process (or another Spool object) has this directory open."""


@dataclass(frozen=True, order=True, slots=True)
class SpoolCursor:
    """A position in the spool: the end of one record. Ordered oldest first."""

    segment: int
    offset: int


@dataclass(frozen=True, slots=True)
class SpoolReport:
    """What `open()` found on disk."""

    segments: int
    batches: int
    readings: int
    bytes_used: int
    corrupted_records: int
    torn_tail_bytes: int
    oldest_received_at: float | None


@dataclass(slots=True)
class _Segment:
    seq: int
    path: Path
    size: int                   # bytes of the file that belong to the spool
    batches: int = 0            # pending (unconsumed, readable) records in this segment
    readings: int = 0
    bad: dict[int, int] = field(default_factory=dict)  # corrupted spans: start → end


def _crc(payload: bytes | memoryview) -> int:
    return zlib.crc32(payload, zlib.crc32(_LENGTH.pack(len(payload))))


def frame(payload: bytes) -> bytes:
    """The record header for a payload (written with the payload by one writev)."""
    return _FRAME.pack(MAGIC, len(payload), _crc(payload))


def _record_end(data: bytes, pos: int) -> int:
    """End offset of a valid record starting at pos, or 0 if none starts there."""
    if len(data) - pos < FRAME_SIZE:
        return 0
    magic, length, crc = _FRAME.unpack_from(data, pos)
    end: int = pos + FRAME_SIZE + length
    if magic != MAGIC or length > _MAX_RECORD or end > len(data):
        return 0
    if _crc(memoryview(data)[pos + FRAME_SIZE:end]) != crc:
        return 0
    return end


def _next_record(data: bytes, pos: int) -> int | None:
    """The first offset ≥ pos where a valid record starts (resynchronisation after damage)."""
    while (pos := data.find(MAGIC, pos)) != -1:
        if _record_end(data, pos):
            return pos
        pos += 1
    return None


@dataclass(slots=True)
class _Scan:
    records: list[tuple[int, int, BatchHeader]]  # start, end, header
    bad: dict[int, int]                          # start → end of damaged spans
    tail: int                                    # where trailing damage starts (= len if none)


def _scan(data: bytes, pos: int = 0) -> _Scan:
    scan = _Scan([], {}, len(data))
    while pos < len(data):
        end = _record_end(data, pos)
        if end:
            try:
                header = read_header(memoryview(data)[pos + FRAME_SIZE:end])
            except DecodeError:
                scan.bad[pos] = end  # intact, but not a batch this version can read
            else:
                scan.records.append((pos, end, header))
            pos = end
            continue
        nxt = _next_record(data, pos + 1)
        if nxt is None:
            scan.tail = pos
            break
        scan.bad[pos] = nxt
        pos = nxt
    return scan


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_datasync = getattr(os, "fdatasync", os.fsync)  # data + size; enough for an append


class Spool:
    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int = 16 * 2**20, *,
                 readings_per_s: float | None = None) -> None:
        """No I/O here: `open()` (or `with Spool(...)`) touches the disk.

        `readings_per_s`, when known, lets `SpoolFull` say how many hours `max_bytes` holds.
        """
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        if segment_bytes <= FRAME_SIZE + HEADER_SIZE:
            raise ValueError(f"segment_bytes {segment_bytes} cannot hold a record")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.readings_per_s = readings_per_s
        self._lock = threading.Lock()
        self._segments: list[_Segment] = []
        self._consumed = SpoolCursor(0, 0)
        self._next_seq = 1
        self._active_fd: int | None = None  # write fd of self._segments[-1], when appending
        self._lock_fd: int | None = None
        # Gauges: snapshots published at the end of every operation, read without the lock,
        # so the event loop asking for them never waits behind an fsync.
        self._bytes = self._pending_batches = self._pending_readings = 0
        self._oldest: float | None = None
        self._corrupted = 0
        self._full_rejections = 0

    # --- lifecycle ------------------------------------------------------------------------

    def open(self) -> SpoolReport:
        with self._lock:
            if self._lock_fd is not None:
                raise RuntimeError(f"spool {self.directory} is already open")
            if not self.directory.is_dir():
                self.directory.mkdir(parents=True)
                _fsync_dir(self.directory.parent)  # the new directory's own entry
            lock_fd = os.open(self.directory / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(lock_fd)
                raise SpoolLocked(f"spool {self.directory} is in use by another process "
                                  f"(or another Spool object)") from None
            self._lock_fd = lock_fd
            try:
                report = self._load()
            except BaseException:
                self._close_files()
                raise
        level = logging.WARNING if report.corrupted_records or report.torn_tail_bytes \
            else logging.INFO
        log.log(level, "spool %s opened: %d batches (%d readings) pending in %d segments, "
                "%d bytes of %d (%.1f %%), oldest received %s; %d corrupted records skipped, "
                "%d bytes of torn tail cut", self.directory, report.batches, report.readings,
                report.segments, report.bytes_used, self.max_bytes,
                100 * report.bytes_used / self.max_bytes, _when(report.oldest_received_at),
                report.corrupted_records, report.torn_tail_bytes)
        return report

    def close(self) -> None:
        with self._lock:
            self._close_files()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _close_files(self) -> None:
        if self._active_fd is not None:
            os.close(self._active_fd)
            self._active_fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None
        self._segments = []
        self._bytes = self._pending_batches = self._pending_readings = 0
        self._oldest = None

    def _require_open(self) -> None:
        if self._lock_fd is None:
            raise RuntimeError(f"spool {self.directory} is not open: call open() first")

    def _load(self) -> SpoolReport:
        self._consumed = self._read_cursor()
        self._corrupted = 0
        torn = 0
        found = sorted((int(p.stem), p) for p in self.directory.glob(f"*{_SUFFIX}")
                       if p.stem.isdigit())
        self._next_seq = max([seq for seq, _ in found] + [self._consumed.segment]) + 1
        segments: list[_Segment] = []
        for index, (seq, path) in enumerate(found):
            if seq < self._consumed.segment:
                path.unlink()  # consumed; a crash came between the cursor and the delete
                continue
            data = path.read_bytes()
            seg = _Segment(seq, path, len(data))
            scan = _scan(data)
            if scan.tail < len(data):
                if index == len(found) - 1:
                    # The newest segment ends mid-record: a crash during an append that
                    # therefore never returned. Cut it so new records follow valid ones.
                    torn = len(data) - scan.tail
                    log.warning("spool segment %s: cutting a torn tail of %d bytes at offset "
                                "%d (an append interrupted by a crash)", path.name, torn,
                                scan.tail)
                    with path.open("r+b") as f:
                        f.truncate(scan.tail)
                        os.fsync(f.fileno())
                    seg.size = scan.tail
                else:  # a sealed segment was complete when its successor was created
                    scan.bad[scan.tail] = len(data)
            since = 0
            if seq == self._consumed.segment:
                since = self._boundary(scan, self._consumed.offset, seg.size)
                if since != self._consumed.offset:
                    log.warning("spool cursor %s is not at a record boundary of %s; "
                                "re-delivering from offset %d", self._consumed, path.name,
                                since)
                    self._consumed = SpoolCursor(seq, since)
            for start, end in sorted(scan.bad.items()):
                if end > since:  # damage in consumed data is no loss: not worth a warning
                    self._set_aside(seg, start, end, data[start:end],
                                    "its CRC or framing fails, or its format version is unknown")
            pending = [h for start, _, h in scan.records if start >= since]
            seg.batches = len(pending)
            seg.readings = sum(h.n_readings for h in pending)
            segments.append(seg)
        self._segments = segments
        self._drop_dead_head()
        self._publish()
        return SpoolReport(segments=len(self._segments), batches=self._pending_batches,
                           readings=self._pending_readings, bytes_used=self._bytes,
                           corrupted_records=self._corrupted, torn_tail_bytes=torn,
                           oldest_received_at=self._oldest)

    @staticmethod
    def _boundary(scan: _Scan, offset: int, size: int) -> int:
        """The last record boundary at or before offset: where to resume without losing
        anything if the cursor file and the segment disagree (neither should happen)."""
        bounds = {0, size} | {end for _, end, _ in scan.records} | set(scan.bad) \
            | set(scan.bad.values())
        return max(b for b in bounds if b <= offset)

    # --- cursor file ----------------------------------------------------------------------

    def _read_cursor(self) -> SpoolCursor:
        path = self.directory / _CURSOR_FILE
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return SpoolCursor(0, 0)
        if len(data) == _CURSOR.size + 4:
            magic, segment, offset = _CURSOR.unpack_from(data)
            (crc,) = _LENGTH.unpack_from(data, _CURSOR.size)
            if magic == _CURSOR_MAGIC and zlib.crc32(data[:_CURSOR.size]) == crc:
                return SpoolCursor(segment, offset)
        # Never lose data over a damaged cursor: re-deliver from the oldest segment instead.
        log.warning("spool cursor file %s is damaged; draining again from the oldest segment",
                    path)
        return SpoolCursor(0, 0)

    def _write_cursor(self, cursor: SpoolCursor) -> None:
        body = _CURSOR.pack(_CURSOR_MAGIC, cursor.segment, cursor.offset)
        tmp = self.directory / (_CURSOR_FILE + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, body + _LENGTH.pack(zlib.crc32(body)))
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(self.directory / _CURSOR_FILE)
        _fsync_dir(self.directory)

    # --- append ---------------------------------------------------------------------------

    def append(self, batches: list[Batch]) -> None:
        """Make the batches durable: returns only after they are fsynced to disk.

        Raises `SpoolFull` (nothing written) when they do not fit in `max_bytes`, and
        `ValueError` (nothing written) when a batch cannot be encoded.
        """
        payloads = [encode(b) for b in batches]  # outside the lock: CPU, not I/O
        if any(len(p) > _MAX_RECORD for p in payloads):
            raise ValueError(f"a batch encodes to more than {_MAX_RECORD:,} bytes; split it")
        records = [(frame(p), p, len(b.readings)) for p, b in zip(payloads, batches,
                                                                   strict=True)]
        need = sum(FRAME_SIZE + len(p) for p in payloads)
        with self._lock:
            self._require_open()
            used = self._bytes
            if used + need > self.max_bytes:
                self._full_rejections += 1
                raise SpoolFull(self._full_message(used, need))
            if records:
                self._write(records)

    def _write(self, records: list[tuple[bytes, bytes, int]]) -> None:
        saved: list[tuple[_Segment, int, int, int]] = []  # to roll back: size, batches, readings
        created: list[_Segment] = []
        try:
            for head, payload, n_readings in records:
                size = len(head) + len(payload)
                seg = self._active()
                if seg is None or (seg.size and seg.size + size > self.segment_bytes):
                    if seg is not None and self._active_fd is not None:
                        # Sealed segments are complete on disk before their successor
                        # exists, so damage in one is rot, never a torn append.
                        _datasync(self._active_fd)
                        os.close(self._active_fd)
                        self._active_fd = None
                    seg = self._new_segment()
                    created.append(seg)
                elif not any(s is seg for s, *_ in saved) and not any(
                        s is seg for s in created):
                    saved.append((seg, seg.size, seg.batches, seg.readings))
                assert self._active_fd is not None
                _write_all(self._active_fd, [head, payload], seg.size)
                seg.size += size
                seg.batches += 1
                seg.readings += n_readings
            assert self._active_fd is not None
            _datasync(self._active_fd)
            if created:
                _fsync_dir(self.directory)
        except BaseException:
            self._roll_back(saved, created)
            self._publish()
            raise
        self._publish()

    def _active(self) -> _Segment | None:
        """The segment appends go to: the newest, reopened after a restart if it has room."""
        if self._active_fd is None and self._segments \
                and self._segments[-1].size < self.segment_bytes:
            self._active_fd = os.open(self._segments[-1].path, os.O_WRONLY)
        return self._segments[-1] if self._active_fd is not None else None

    def _new_segment(self) -> _Segment:
        seq = self._next_seq
        path = self.directory / f"{seq:012d}{_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._next_seq += 1
        self._active_fd = fd
        seg = _Segment(seq, path, 0)
        self._segments.append(seg)
        return seg

    def _roll_back(self, saved: list[tuple[_Segment, int, int, int]],
                   created: list[_Segment]) -> None:
        """Undo a failed append, so that nothing of it stays on disk or in the counters."""
        log.error("spool append failed; rolling back what it wrote")
        if self._active_fd is not None:
            os.close(self._active_fd)
            self._active_fd = None  # reopened by _active() at the next append
        for seg in created:
            self._segments = [s for s in self._segments if s is not seg]
            with contextlib.suppress(OSError):
                seg.path.unlink()
        for seg, size, batches, readings in saved:
            try:
                os.truncate(seg.path, size)
            except OSError:
                log.exception("spool: cannot truncate %s back to %d bytes; the next open "
                              "cuts the rest as a torn tail", seg.path, size)
            seg.size, seg.batches, seg.readings = size, batches, readings

    def _full_message(self, used: int, need: int) -> str:
        parts = [f"spool {self.directory} is full: {used:,} of {self.max_bytes:,} bytes used "
                 f"({100 * used / self.max_bytes:.1f} %), {self._pending_batches:,} batches / "
                 f"{self._pending_readings:,} readings pending"]
        oldest = self._oldest
        if oldest is not None:
            hours = max(0.0, datetime.now(UTC).timestamp() - oldest) / 3600
            parts.append(f"the oldest received {_when(oldest)} ({hours:.1f} h ago)")
        if self.readings_per_s:
            per_reading = measured_bytes_per_reading()
            hours_max = self.max_bytes / per_reading / self.readings_per_s / 3600
            parts.append(f"max_bytes holds ≈ {hours_max:.1f} h at "
                         f"{self.readings_per_s:,.0f} readings/s")
        parts.append(f"this append needs {need:,} bytes; it was refused, nothing written. "
                     f"Restore the database so the spool drains, or give it more room")
        return "; ".join(parts)

    # --- drain ----------------------------------------------------------------------------

    def peek(self, max_batches: int) -> list[tuple[SpoolCursor, Batch]]:
        """The oldest unconsumed batches (at most max_batches), oldest first, not consumed."""
        if max_batches <= 0:
            return []
        with self._lock:
            self._require_open()
            raw = self._read_pending(max_batches)
        out: list[tuple[SpoolCursor, Batch]] = []
        for seg, start, payload in raw:
            cursor = SpoolCursor(seg.seq, start + FRAME_SIZE + len(payload))
            try:
                out.append((cursor, decode(payload)))
            except DecodeError as exc:  # intact on disk but unreadable: a codec bug
                with self._lock:
                    if any(s is seg for s in self._segments) and cursor > self._consumed \
                            and start not in seg.bad:
                        header = read_header(payload)
                        seg.batches -= 1
                        seg.readings -= header.n_readings
                        self._set_aside(seg, start, cursor.offset, frame(payload) + payload,
                                        f"it does not decode ({exc})")
                        self._drop_dead_head()
                        self._publish()
        return out

    def _read_pending(self, limit: int) -> list[tuple[_Segment, int, bytes]]:
        out: list[tuple[_Segment, int, bytes]] = []
        for seg in list(self._segments):
            pos = self._consumed.offset if seg.seq == self._consumed.segment else 0
            rescanned = -1
            with seg.path.open("rb", buffering=0) as f:
                fd = f.fileno()
                while pos < seg.size and len(out) < limit:
                    if pos in seg.bad:
                        pos = seg.bad[pos]
                        continue
                    payload = _read_record(fd, pos, seg.size)
                    if payload is None:  # damaged since open (bit rot): rescan, go on
                        if rescanned == pos:  # only if something else rewrote the file
                            raise RuntimeError(f"spool segment {seg.path} changed under the "
                                               f"spool at offset {pos}; close and reopen it")
                        rescanned = pos
                        self._rescan(seg)
                        continue
                    out.append((seg, pos, payload))
                    pos += FRAME_SIZE + len(payload)
            if len(out) >= limit:
                break
        return out

    def consume(self, cursor: SpoolCursor) -> None:
        """Everything up to and including the record ending at `cursor` is in the database:
        forget it, durably. Cursors at or before the consumed position are ignored."""
        with self._lock:
            self._require_open()
            if cursor <= self._consumed:
                return
            counts = self._walk_to(cursor)  # validates before anything changes
            self._write_cursor(cursor)
            self._consumed = cursor
            for seg, batches, readings in counts:
                seg.batches -= batches
                seg.readings -= readings
            for seg in list(self._segments):
                if seg.seq < cursor.segment or (seg.seq == cursor.segment
                                                and seg.batches == 0):
                    self._delete(seg)
            self._drop_dead_head()
            self._publish()

    def _walk_to(self, cursor: SpoolCursor) -> list[tuple[_Segment, int, int]]:
        """Per segment, the (batches, readings) between the consumed position and cursor."""
        counts: list[tuple[_Segment, int, int]] = []
        if not any(seg.seq == cursor.segment for seg in self._segments):
            raise ValueError(f"{cursor} is not in this spool")
        for seg in self._segments:
            if seg.seq > cursor.segment:
                break
            pos = self._consumed.offset if seg.seq == self._consumed.segment else 0
            stop = cursor.offset if seg.seq == cursor.segment else seg.size
            batches = readings = 0
            with seg.path.open("rb", buffering=0) as f:
                while pos < stop:
                    if pos in seg.bad:
                        pos = seg.bad[pos]
                        continue
                    head = os.pread(f.fileno(), FRAME_SIZE + HEADER_SIZE, pos)
                    if len(head) < FRAME_SIZE + HEADER_SIZE or head[:4] != MAGIC:
                        raise ValueError(f"{cursor} is not a record boundary of this spool")
                    _, length, _ = _FRAME.unpack_from(head)
                    readings += read_header(head[FRAME_SIZE:]).n_readings
                    batches += 1
                    pos += FRAME_SIZE + length
            if pos != stop:
                raise ValueError(f"{cursor} is not a record boundary of this spool")
            counts.append((seg, batches, readings))
        return counts

    # --- damage ---------------------------------------------------------------------------

    def _set_aside(self, seg: _Segment, start: int, end: int, data: bytes, why: str) -> None:
        """Skip a damaged span from now on, count it and keep a copy for a person."""
        seg.bad[start] = end
        n = max(1, data.count(MAGIC))
        self._corrupted += n
        log.warning("spool segment %s: skipping %d bytes at offset %d (%d record(s)): %s",
                    seg.path.name, end - start, start, n, why)
        try:
            folder = self.directory / _QUARANTINE
            folder.mkdir(exist_ok=True)
            copy = folder / f"{seg.seq:012d}-{start:012d}.bad"
            if not copy.exists():
                copy.write_bytes(data)
        except OSError:
            log.exception("spool: cannot copy damaged bytes to quarantine")

    def _rescan(self, seg: _Segment) -> None:
        """A record failed its CRC after open: find every damaged span of the segment again
        and recount what is pending in it."""
        since = self._consumed.offset if seg.seq == self._consumed.segment else 0
        with seg.path.open("rb") as f:
            data = f.read(seg.size)
        scan = _scan(data, since)  # from a known boundary: earlier records are consumed
        if scan.tail < len(data):
            scan.bad[scan.tail] = len(data)
        for start, end in sorted(scan.bad.items()):
            if seg.bad.get(start) != end:
                self._set_aside(seg, start, end, data[start:end], "its CRC fails (bit rot?)")
        # Records set aside earlier because they did not decode are intact: still skipped.
        pending = [h for start, _, h in scan.records if start not in seg.bad]
        seg.batches = len(pending)
        seg.readings = sum(h.n_readings for h in pending)
        self._publish()

    def _drop_dead_head(self) -> None:
        """Delete leading segments with nothing readable left (all consumed or damaged)."""
        while self._segments and self._segments[0].batches == 0:
            self._delete(self._segments[0])

    def _delete(self, seg: _Segment) -> None:
        if self._active_fd is not None and seg is self._segments[-1]:
            os.close(self._active_fd)
            self._active_fd = None
        self._segments = [s for s in self._segments if s is not seg]
        seg.path.unlink(missing_ok=True)

    # --- gauges ---------------------------------------------------------------------------

    def _publish(self) -> None:
        """Recompute the gauges after a change (under the lock)."""
        self._bytes = sum(seg.size for seg in self._segments)
        self._pending_batches = sum(seg.batches for seg in self._segments)
        self._pending_readings = sum(seg.readings for seg in self._segments)
        self._oldest = self._head_received_at()

    def _head_received_at(self) -> float | None:
        """received_at of the oldest pending record, from its header alone."""
        for seg in self._segments:
            if not seg.batches:
                continue
            pos = self._consumed.offset if seg.seq == self._consumed.segment else 0
            while pos in seg.bad:
                pos = seg.bad[pos]
            with seg.path.open("rb", buffering=0) as f:
                head = os.pread(f.fileno(), FRAME_SIZE + HEADER_SIZE, pos)
            try:
                return read_header(head[FRAME_SIZE:]).received_at
            except DecodeError:  # damaged since open; the next peek finds and skips it
                return None
        return None

    @property
    def bytes_used(self) -> int:
        """Bytes of segment files on disk (what `max_bytes` bounds)."""
        return self._bytes

    @property
    def batches(self) -> int:
        """Batches pending (appended, not consumed)."""
        return self._pending_batches

    @property
    def readings(self) -> int:
        """Readings in the pending batches."""
        return self._pending_readings

    @property
    def oldest_received_at(self) -> float | None:
        """Wall time (`Batch.received_at`) of the oldest pending batch; None when empty."""
        return self._oldest

    @property
    def fill_ratio(self) -> float:
        """bytes_used / max_bytes: the health endpoint's spool gauge."""
        return self._bytes / self.max_bytes

    @property
    def corrupted_records(self) -> int:
        """Records skipped since open() because they were damaged or unreadable."""
        return self._corrupted

    @property
    def full_rejections(self) -> int:
        """Appends refused with SpoolFull since this object was made."""
        return self._full_rejections


def _read_record(fd: int, pos: int, size: int) -> bytes | None:
    """The payload of the record at pos, or None if it is not intact."""
    head = os.pread(fd, FRAME_SIZE, pos)
    if len(head) < FRAME_SIZE:
        return None
    magic, length, crc = _FRAME.unpack(head)
    if magic != MAGIC or pos + FRAME_SIZE + length > size:
        return None
    payload = os.pread(fd, length, pos + FRAME_SIZE)
    if len(payload) != length or _crc(payload) != crc:
        return None
    return payload


def _write_all(fd: int, chunks: list[bytes], offset: int) -> None:
    """pwritev at an explicit offset (the spool, not the file position, says where a record
    goes), looping in case a regular file writes short, which it rarely does."""
    remaining = sum(len(c) for c in chunks)
    written = os.pwritev(fd, chunks, offset)
    if written < remaining:
        rest = b"".join(chunks)[written:]
        offset += written
        while rest:
            n = os.pwrite(fd, rest, offset)
            rest, offset = rest[n:], offset + n


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


@cache
def measured_bytes_per_reading() -> float:
    """Spool bytes per reading of a realistic 5,000-reading batch, framing included."""
    batch = realistic_batch()
    return (FRAME_SIZE + len(encode(batch))) / len(batch.readings)


def spool_bytes_for(hours: float, readings_per_s: float,
                    bytes_per_reading: float | None = None) -> int:
    """max_bytes that holds `hours` of data at `readings_per_s` (lesson 6: size a buffer in
    hours, not bytes). Without bytes_per_reading, the codec is measured on a realistic
    batch; add one segment of headroom if drained-but-undeleted data must not count."""
    if hours < 0 or readings_per_s < 0:
        raise ValueError("hours and readings_per_s must not be negative")
    per_reading = measured_bytes_per_reading() if bytes_per_reading is None \
        else bytes_per_reading
    return math.ceil(hours * 3600 * readings_per_s * per_reading)
