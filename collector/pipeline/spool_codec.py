"""Binary codec for one `Batch` in the spool: fast, lossless, and inert when read.

The spool takes the whole plant's data while the database is down, so encoding and decoding
must keep up with the plant (target ≥ 300k readings/s each way on one core). Readings are
therefore stored column by column (`array` → bytes, one C loop per column) with their strings
interned in a table per record; material events and dead letters are rare and go as JSON. No
pickle: a spool file is data and must never execute code when it is read back.

Format, version 1 (all integers little-endian):

    header, 32 bytes  "<BBHdIIIII"
        u8   version              = 1; a decoder refuses any other
        u8   flags                bit 0: string indices are u32 (else u16)
                                  bit 1: a per-reading flags column follows
                                  bit 2: a server_time column follows
        u16  reserved             = 0
        f64  received_at          Batch.received_at (wall clock, seconds since the epoch)
        u32  n_readings
        u32  n_events
        u32  n_dead_letters
        u32  n_strings            string table size; string 0 is Batch.source
        u32  strings_bytes        size of the UTF-8 blob
    string table        u32[n_strings] byte lengths, then the blob (UTF-8, surrogates passed)
    reading columns     n_readings entries each, in this order:
        asset      u16|u32  index into the string table
        signal     u16|u32
        origin     u16|u32
        time       i64      µs since 1970-01-01T00:00Z (UTC instant; see below)
        value      f64      IEEE 754 bits as given (NaN payloads, ±inf, -0.0 kept); 0.0 if None
        status     u32      OPC UA StatusCode
        quality    u8       Quality value
        flags      u8       only if header bit 1: bit 0 value is None, bit 1 time is naive,
                            bit 2 server_time present, bit 3 server_time is naive
        server     i64      only if header bit 2: server_time like time (0 when absent)
    events              u32 byte length + JSON array of event objects (time as
                        [utc µs, utc offset µs], so the offset survives)
    dead letters        u32 byte length + JSON array of [origin, reason, detail, payload
                        length], then the payloads back to back

Time zones: a Reading's time and server_time come back as the same instant in UTC — the
original offset is *not* kept (the contract says readings carry UTC; aware datetimes in
other fixed offsets still compare equal). A naive datetime (a source bug the writer
dead-letters) is kept naive rather than refused, so that one bad reading cannot make a whole
batch unspoolable. Material events keep their offset exactly.

Limits: an instant must lie inside datetime's range in UTC, a status code in uint32 and a
quality in uint8, or `encode` raises `ValueError` (programming errors in a source, not plant
data). Dead-letter `detail` is JSON: values json cannot represent become `str()` (as the
store writer does), tuples become lists. An event that no longer validates against today's
`MaterialEvent` model (an old spool after an upgrade) is decoded as a `DeadLetter` holding
its JSON, never dropped. `Batch.on_durable` is not stored (a callback cannot be).
"""

from __future__ import annotations

import json
import logging
import struct
import sys
from array import array
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from enum import Enum
from itertools import repeat
from typing import Any, Final

from pydantic import ValidationError

from collector.contracts import DeadLetter, MaterialEvent, Quality, Reading
from collector.pipeline.batch import Batch

log = logging.getLogger(__name__)

VERSION: Final = 1

_HEADER = struct.Struct("<BBHdIIIII")
HEADER_SIZE: Final = _HEADER.size
_U32 = struct.Struct("<I")

_WIDE_INDEX = 0x01
_HAS_FLAGS = 0x02
_HAS_SERVER_TIME = 0x04

_VALUE_NONE = 0x01
_TIME_NAIVE = 0x02
_SERVER_PRESENT = 0x04
_SERVER_NAIVE = 0x08

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)  # noqa: DTZ001 - the reference for naive times only
_US = timedelta(microseconds=1)
_MIN_US = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // _US
_MAX_US = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _US
_QUALITIES: Final = {int(q): q for q in Quality}
_SWAP = sys.byteorder == "big"  # the format is little-endian; array uses native order

for _code, _size in (("H", 2), ("I", 4), ("q", 8), ("d", 8), ("B", 1)):
    if array(_code).itemsize != _size:  # pragma: no cover - exotic platforms only
        raise ImportError(f"array({_code!r}) is not {_size} bytes here; the spool needs it")


class DecodeError(ValueError):
    """The bytes are not a batch this codec can read (wrong version, truncated, inconsistent)."""


class BatchHeader:
    """The fixed header alone: what the spool needs for its gauges without decoding."""

    __slots__ = ("n_dead_letters", "n_events", "n_readings", "received_at")

    def __init__(self, received_at: float, n_readings: int, n_events: int,
                 n_dead_letters: int) -> None:
        self.received_at = received_at
        self.n_readings = n_readings
        self.n_events = n_events
        self.n_dead_letters = n_dead_letters


def read_header(data: bytes | memoryview) -> BatchHeader:
    if len(data) < HEADER_SIZE:
        raise DecodeError(f"{len(data)} bytes is shorter than the {HEADER_SIZE}-byte header")
    version, _, _, received_at, n_readings, n_events, n_dead, _, _ = _HEADER.unpack_from(data)
    if version != VERSION:
        raise DecodeError(f"batch format version {version}; this codec reads {VERSION}")
    return BatchHeader(received_at, n_readings, n_events, n_dead)


# --- encoding -------------------------------------------------------------------------------

def _column(code: str, values: Any) -> bytes:
    col = array(code, values)
    if _SWAP:  # pragma: no cover - little-endian machines only in this project
        col.byteswap()
    return col.tobytes()


def _micros(times: list[datetime], what: str) -> list[int]:
    """µs since the epoch of aware datetimes: exact integer arithmetic, no float rounding."""
    us = [(t - _EPOCH) // _US for t in times]
    if us and (min(us) < _MIN_US or max(us) > _MAX_US):
        raise ValueError(f"a reading's {what} lies outside datetime's range in UTC")
    return us


def _micros_mixed(times: list[datetime | None], what: str) -> tuple[list[int], list[int]]:
    """Slow path for columns with naive datetimes or None: (µs, per-reading 0/1/2 =
    aware/naive/absent)."""
    us: list[int] = []
    kinds: list[int] = []
    for t in times:
        if t is not None and not isinstance(t, datetime):
            raise ValueError(f"a reading's {what} is {type(t).__name__}, not a datetime")
        if t is None:
            us.append(0)
            kinds.append(2)
        elif t.utcoffset() is None:
            us.append((t.replace(tzinfo=None) - _NAIVE_EPOCH) // _US)
            kinds.append(1)
        else:
            us.append((t - _EPOCH) // _US)
            kinds.append(0)
    if us and (min(us) < _MIN_US or max(us) > _MAX_US):
        raise ValueError(f"a reading's {what} lies outside datetime's range in UTC")
    return us, kinds


def _event_json(event: MaterialEvent) -> dict[str, Any]:
    data = event.model_dump(mode="python")
    t: datetime = data["time"]
    offset = t.utcoffset()
    assert offset is not None  # MaterialEvent refuses naive times
    data["time"] = [(t - _EPOCH) // _US, offset // _US]
    for key, value in data.items():
        if isinstance(value, Enum):  # StrEnum members as their plain value
            data[key] = value.value
    return data


def encode(batch: Batch) -> bytes:
    readings = batch.readings
    n = len(readings)
    table: dict[str, int] = {batch.source: 0}
    intern = table.setdefault
    try:
        assets = [intern(r.asset, len(table)) for r in readings]
        signals = [intern(r.signal, len(table)) for r in readings]
        origins = [intern(r.origin, len(table)) for r in readings]
    except TypeError as exc:
        raise ValueError(f"a reading's asset, signal or origin is unhashable: {exc}") from exc
    try:
        strings = [s.encode("utf-8", "surrogatepass") for s in table]
    except AttributeError as exc:
        raise ValueError(f"a batch's source, asset, signal or origin is not a string: {exc}"
                         ) from exc
    flags = 0
    index = "H"
    if len(table) > 0xFFFF:
        flags |= _WIDE_INDEX
        index = "I"

    row_flags: list[int] | None = None
    values = [r.value for r in readings]
    if None in values:
        row_flags = [_VALUE_NONE if v is None else 0 for v in values]
        values = [0.0 if v is None else v for v in values]
    times = [r.time for r in readings]
    try:
        time_us = _micros(times, "time")
    except TypeError:  # a naive datetime among them
        time_us, kinds = _micros_mixed(list(times), "time")
        row_flags = row_flags or [0] * n
        row_flags = [f | (_TIME_NAIVE if k == 1 else 0) for f, k in zip(row_flags, kinds,
                                                                          strict=True)]
    server = [r.server_time for r in readings]
    server_us: list[int] | None = None
    if any(s is not None for s in server):
        flags |= _HAS_SERVER_TIME
        try:
            server_us = _micros(server, "server_time")  # type: ignore[arg-type]
        except TypeError:  # None or naive among them
            server_us, kinds = _micros_mixed(server, "server_time")
            row_flags = row_flags or [0] * n
            row_flags = [f | (0 if k == 2 else _SERVER_PRESENT)
                         | (_SERVER_NAIVE if k == 1 else 0)
                         for f, k in zip(row_flags, kinds, strict=True)]
        else:
            if row_flags is not None:
                row_flags = [f | _SERVER_PRESENT for f in row_flags]
    if row_flags is not None:
        flags |= _HAS_FLAGS

    try:
        parts = [
            b"",  # header, below
            _column("I", [len(s) for s in strings]),
            b"".join(strings),
            _column(index, assets),
            _column(index, signals),
            _column(index, origins),
            _column("q", time_us),
            _column("d", values),
            _column("I", [r.status_code for r in readings]),
        ]
        quality = array("B", [r.quality for r in readings])
        if quality and max(quality) not in _QUALITIES:
            raise ValueError(f"a reading's quality {max(quality)} is not a Quality")
        parts.append(quality.tobytes())
    except OverflowError as exc:
        raise ValueError(f"a reading's status code or quality is out of range: {exc}") from exc
    except TypeError as exc:
        raise ValueError(f"a reading's value, status code or quality has the wrong type: "
                         f"{exc}") from exc
    if row_flags is not None:
        parts.append(_column("B", row_flags))
    if server_us is not None:
        parts.append(_column("q", server_us))

    events = json.dumps([_event_json(e) for e in batch.events]).encode()
    parts += [_U32.pack(len(events)), events]
    letters = batch.dead_letters
    meta = json.dumps([[d.origin, d.reason, d.detail, len(d.payload)] for d in letters],
                      default=str).encode()
    parts += [_U32.pack(len(meta)), meta]
    parts += [bytes(d.payload) for d in letters]

    parts[0] = _HEADER.pack(VERSION, flags, 0, batch.received_at, n, len(batch.events),
                            len(letters), len(strings), len(parts[2]))
    return b"".join(parts)


# --- decoding -------------------------------------------------------------------------------

class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes | memoryview, pos: int) -> None:
        self.data = data
        self.pos = pos

    def take(self, size: int) -> bytes | memoryview:
        end = self.pos + size
        if end > len(self.data):
            raise DecodeError(f"truncated: needs {end} bytes, has {len(self.data)}")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def column(self, code: str, n: int) -> array[Any]:
        col = array(code)
        col.frombytes(self.take(n * col.itemsize))
        if _SWAP:  # pragma: no cover
            col.byteswap()
        return col

    def u32(self) -> int:
        value: int = _U32.unpack(self.take(4))[0]
        return value


def _utc_times(micros: array[int]) -> list[datetime]:
    # Readings of one batch share few distinct instants: build each datetime once.
    # map() over C callables keeps the per-item work out of the interpreter loop.
    distinct = list(set(micros))
    cache = dict(zip(distinct, map(_EPOCH.__add__, map(timedelta, repeat(0), repeat(0),
                                                          distinct)), strict=True))
    return list(map(cache.__getitem__, micros))


def _readings(n: int, columns: tuple[Sequence[Any], ...]) -> list[Reading]:
    # Reading is a NamedTuple: building them column-wise through one C-level map is cheap.
    return list(map(Reading, *columns))


def _time(us: int, naive: bool) -> datetime:
    return _NAIVE_EPOCH + timedelta(microseconds=us) if naive else \
        _EPOCH + timedelta(microseconds=us)


def _event(data: dict[str, Any]) -> MaterialEvent | DeadLetter:
    raw = dict(data)
    try:
        utc_us, offset_us = data["time"]
        offset = timedelta(microseconds=offset_us)
        zone: tzinfo = UTC if not offset else timezone(offset)
        data["time"] = (_EPOCH + timedelta(microseconds=utc_us)).astimezone(zone)
        return MaterialEvent.model_validate(data)
    except (ValidationError, ValueError, TypeError, KeyError, OverflowError) as exc:
        # An event spooled by an older version that today's model refuses: keep it, visibly.
        log.warning("a spooled material event no longer validates; dead-lettering it: %s", exc)
        return DeadLetter(origin=str(raw.get("origin", "")) or "spool",
                          reason=f"spooled material event no longer validates: {exc}",
                          payload=json.dumps(raw).encode(), detail={"spooled_event": raw})


def decode(data: bytes | memoryview) -> Batch:
    try:
        return _decode(data)
    except DecodeError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, struct.error) as exc:
        raise DecodeError(f"inconsistent batch record: {exc!r}") from exc


def _decode(data: bytes | memoryview) -> Batch:
    if len(data) < HEADER_SIZE:
        raise DecodeError(f"{len(data)} bytes is shorter than the {HEADER_SIZE}-byte header")
    (version, flags, _, received_at, n, n_events, n_dead, n_strings,
     strings_bytes) = _HEADER.unpack_from(data)
    if version != VERSION:
        raise DecodeError(f"batch format version {version}; this codec reads {VERSION}")
    rd = _Reader(data, HEADER_SIZE)
    lengths = rd.column("I", n_strings)
    blob = bytes(rd.take(strings_bytes))
    strings: list[str] = []
    pos = 0
    for length in lengths:
        strings.append(blob[pos:pos + length].decode("utf-8", "surrogatepass"))
        pos += length
    if pos != strings_bytes or not strings:
        raise DecodeError("string table lengths do not add up")
    index = "I" if flags & _WIDE_INDEX else "H"
    get = strings.__getitem__
    assets = list(map(get, rd.column(index, n)))
    signals = list(map(get, rd.column(index, n)))
    origins = list(map(get, rd.column(index, n)))
    time_us = rd.column("q", n)
    values: list[float | None] = rd.column("d", n).tolist()
    statuses = rd.column("I", n).tolist()
    qualities = list(map(_QUALITIES.__getitem__, rd.column("B", n)))
    row_flags = rd.column("B", n) if flags & _HAS_FLAGS else None
    server_us = rd.column("q", n) if flags & _HAS_SERVER_TIME else None

    if row_flags is None:
        times = _utc_times(time_us)
        servers: list[datetime | None] = [None] * n
        if server_us is not None:
            servers = list(_utc_times(server_us))
    else:
        times = []
        servers = []
        for i, f in enumerate(row_flags):
            if f & _VALUE_NONE:
                values[i] = None
            times.append(_time(time_us[i], bool(f & _TIME_NAIVE)))
            servers.append(_time(server_us[i], bool(f & _SERVER_NAIVE))
                           if server_us is not None and f & _SERVER_PRESENT else None)
    readings = _readings(n, (assets, signals, values, times, qualities, statuses, origins,
                             servers))

    events = [_event(e) for e in json.loads(bytes(rd.take(rd.u32())))]
    if len(events) != n_events:
        raise DecodeError(f"header says {n_events} events, body has {len(events)}")
    meta = json.loads(bytes(rd.take(rd.u32())))
    if len(meta) != n_dead:
        raise DecodeError(f"header says {n_dead} dead letters, body has {len(meta)}")
    letters = [DeadLetter(origin=origin, reason=reason, payload=bytes(rd.take(size)),
                          detail=detail) for origin, reason, detail, size in meta]
    if rd.pos != len(data):
        raise DecodeError(f"{len(data) - rd.pos} unexpected bytes after the batch")
    # An event that failed validation travels on as a dead letter (see _event).
    letters += [e for e in events if isinstance(e, DeadLetter)]
    return Batch(source=strings[0], readings=readings,
                 events=[e for e in events if isinstance(e, MaterialEvent)],
                 dead_letters=letters, received_at=received_at)


# --- a realistic sample, for sizing and benchmarks --------------------------------------------

def realistic_batch(n_readings: int = 5_000, n_pairs: int = 300, *,
                    start: datetime | None = None, source: str = "furnace-plc-1") -> Batch:
    """Readings as a reduction area sends them: a few hundred asset/signal pairs repeated,
    1 s apart, server times a few ms after the source times, an OPC UA origin."""
    t0 = start or datetime(2026, 11, 1, tzinfo=UTC)
    signals = ("zone_temp_c", "vacuum_pa", "condenser_water_temp_c", "air_preheat_temp_c",
               "gas_preheat_temp_c", "cycle_elapsed_h")
    pairs = [(f"yulin-1/reduction/furnace-{i // 60 + 1:02d}/retort-{i // 6 % 10 + 1:02d}",
              signals[i % len(signals)]) for i in range(n_pairs)]
    origin = f"opcua:opc.tcp://10.20.0.{len(source) % 200 + 10}:4840"
    readings = []
    for i in range(n_readings):
        asset, signal = pairs[i % n_pairs]
        t = t0 + timedelta(seconds=i // n_pairs, microseconds=(i % n_pairs) * 131)
        readings.append(Reading(asset, signal, 900.0 + (i * 7919 % 2000) / 16.0, t,
                                Quality.GOOD, 0, origin, t + timedelta(milliseconds=4)))
    return Batch(source=source, readings=readings, received_at=t0.timestamp())
