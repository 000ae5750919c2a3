"""The recording file: one SQLite database (format `smeltwatch-recording`, version 1).

SQLite because it is crash-safe while recording (what was committed survives a killed
recorder), readable with any `sqlite3`, and indexed for seeking — rosbag2's first storage for
the same reasons. The schema is the documentation (see simulators/README.md, "Recordings"):

- `meta(key, value)`: `format`, `version`, `created` (UTC, ISO 8601), `recorder` (the command
  line) and free notes.
- `channels(id, protocol, endpoint, name, spec)`: what was recorded. MQTT: the broker URL
  and the topic. OPC UA: the server endpoint and the node as `nsu=<namespace URI>;<id>`
  (Part 6 text form with the namespace URI, never an index, which differs between servers),
  with the variable's metadata (`spec`, JSON: browse path, engineering unit, EURange,
  description, data type, historizing) so a replay serves the same address space.
- `messages(seq, channel, recv_time_ns, data, qos, retain, properties)`, in the order they
  were received: `recv_time_ns` is the recorder's UTC receive time (ns since the Unix epoch,
  monotonic within a recording). MQTT: `data` is the payload, byte for byte, with QoS,
  retain flag and the MQTT 5 properties (JSON). OPC UA: `data` is the DataValue in the OPC UA
  binary encoding (Part 6, 5.2.2.17) — value with its variant type, status code, source and
  server timestamps with picoseconds — so nothing is rounded or renamed on the way.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FORMAT, VERSION = "smeltwatch-recording", 1
SCHEMA = """
create table meta (key text primary key, value text not null);
create table channels (
    id integer primary key,
    protocol text not null check (protocol in ('mqtt', 'opcua')),
    endpoint text not null,
    name text not null,
    spec text,
    unique (protocol, endpoint, name)
);
create table messages (
    seq integer primary key,
    channel integer not null references channels (id),
    recv_time_ns integer not null,
    data blob not null,
    qos integer,
    retain integer,
    properties text
);
create index messages_by_time on messages (recv_time_ns);
"""


class RecordingError(ValueError):
    pass


@dataclass(frozen=True)
class Channel:
    id: int
    protocol: str          # mqtt | opcua
    endpoint: str          # broker URL | OPC UA endpoint URL
    name: str              # topic | nsu=<namespace URI>;<identifier>
    spec: dict[str, Any] | None = None


@dataclass(frozen=True)
class Message:
    seq: int
    channel: Channel
    recv_time_ns: int
    data: bytes
    qos: int | None = None
    retain: bool | None = None
    properties: dict[str, Any] | None = None


class RecordingWriter:
    """Appends to a new recording; `commit()` makes what was appended durable."""

    def __init__(self, path: Path, recorder: str, notes: dict[str, str] | None = None) -> None:
        if path.exists():
            raise RecordingError(f"{path} exists; a recording is never overwritten")
        self.path = path
        self._db = sqlite3.connect(path)
        self._db.execute("pragma journal_mode = wal")
        self._db.execute("pragma synchronous = normal")  # WAL: durable at each checkpoint
        self._db.executescript(SCHEMA)
        meta = {"format": FORMAT, "version": str(VERSION),
                "created": datetime.now(UTC).isoformat(), "recorder": recorder,
                **(notes or {})}
        self._db.executemany("insert into meta values (?, ?)", meta.items())
        self._db.commit()
        self._channels: dict[tuple[str, str, str], int] = {}
        self._pending: list[tuple[int, int, int, bytes, int | None, int | None, str | None]] = []
        self.messages = 0

    def channel(self, protocol: str, endpoint: str, name: str,
                spec: dict[str, Any] | None = None) -> int:
        key = (protocol, endpoint, name)
        if key not in self._channels:
            cursor = self._db.execute(
                "insert into channels (protocol, endpoint, name, spec) values (?, ?, ?, ?)",
                (*key, None if spec is None else json.dumps(spec, ensure_ascii=False)))
            self._channels[key] = int(cursor.lastrowid or 0)
        return self._channels[key]

    @property
    def channel_count(self) -> int:
        return len(self._channels)

    def append(self, seq: int, channel: int, recv_time_ns: int, data: bytes, *,
               qos: int | None = None, retain: bool | None = None,
               properties: dict[str, Any] | None = None) -> None:
        self._pending.append((seq, channel, recv_time_ns, data, qos,
                              None if retain is None else int(retain),
                              None if not properties else json.dumps(properties)))

    def commit(self) -> int:
        rows, self._pending = self._pending, []
        if rows:
            self._db.executemany("insert into messages values (?, ?, ?, ?, ?, ?, ?)", rows)
        self._db.commit()
        self.messages += len(rows)
        return len(rows)

    def close(self) -> None:
        self.commit()
        self._db.execute("pragma wal_checkpoint(truncate)")
        self._db.close()


class Recording:
    """Reads a recording."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise RecordingError(f"no recording at {path}")
        self.path = path
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            self.meta = dict(self._db.execute("select key, value from meta"))
        except sqlite3.DatabaseError as exc:
            raise RecordingError(f"{path} is not a smeltwatch recording ({exc})") from None
        if self.meta.get("format") != FORMAT:
            raise RecordingError(f"{path} is not a smeltwatch recording")
        if int(self.meta.get("version", "0")) > VERSION:
            raise RecordingError(f"{path} is format version {self.meta['version']}; this "
                                 f"smeltwatch reads up to version {VERSION}: upgrade it")
        self.channels = {row[0]: Channel(row[0], row[1], row[2], row[3],
                                         json.loads(row[4]) if row[4] else None)
                         for row in self._db.execute(
                             "select id, protocol, endpoint, name, spec from channels")}

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def span_ns(self) -> tuple[int, int] | None:
        first, last = self._db.execute(
            "select min(recv_time_ns), max(recv_time_ns) from messages").fetchone()
        return None if first is None else (int(first), int(last))

    def count(self) -> int:
        return int(self._db.execute("select count(*) from messages").fetchone()[0])

    def counts_by_channel(self) -> dict[int, int]:
        return dict(self._db.execute("select channel, count(*) from messages group by channel"))

    def messages(self, channels: set[int] | None = None,
                 from_recv_ns: int | None = None) -> Iterator[Message]:
        """Messages in recorded order, optionally of some channels and from a receive time."""
        query = ("select seq, channel, recv_time_ns, data, qos, retain, properties "
                 "from messages")
        args: list[int] = []
        if from_recv_ns is not None:
            query += " where recv_time_ns >= ?"
            args.append(from_recv_ns)
        cursor = self._db.execute(query + " order by seq", args)
        while rows := cursor.fetchmany(2000):
            for seq, channel, recv, data, qos, retain, properties in rows:
                if channels is not None and channel not in channels:
                    continue
                yield Message(seq, self.channels[channel], recv, bytes(data), qos,
                              None if retain is None else bool(retain),
                              json.loads(properties) if properties else None)

    def content_digest(self, canonical: Callable[[Message], bytes] | None = None) -> str:
        """SHA-256 of what the sources sent, channel by channel in recorded order: receive
        times, endpoints and the interleaving of channels (which the network decides) are left
        out, and `canonical` may drop more (the OPC UA server timestamps, say). Two runs of
        one scenario and seed give the same digest."""
        streams: dict[tuple[str, str], Any] = {}
        for m in self.messages():
            key = (m.channel.protocol, m.channel.name)
            stream = streams.setdefault(key, hashlib.sha256())
            stream.update(m.data if canonical is None else canonical(m))
            stream.update(b"\n")
        total = hashlib.sha256()
        for key in sorted(streams):
            total.update(f"{key[0]}|{key[1]}|{streams[key].hexdigest()}\n".encode())
        return total.hexdigest()
