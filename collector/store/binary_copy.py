"""Rows for `COPY samples … (format binary)`, packed with struct in one buffer.

psycopg's `write_row` formats each row through its type adapters (≈ 1 µs a row here); the
samples table has one fixed shape, so packing it directly is several times cheaper and the
buffer goes out in one `write`. The format is PostgreSQL's binary COPY (the `COPY`
documentation, "Binary Format"): a signature and header, then per row a field count and, per
field, its length (-1 for NULL) and its big-endian value; timestamps are microseconds since
2000-01-01 UTC.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)  # no OIDs, no extension
TRAILER = struct.pack(">h", -1)
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
# (time, tag_id, value, quality, status_code, server_time) — the four NULL combinations
_FULL = struct.Struct(">hiqiiidihiqiq")
_NO_VALUE = struct.Struct(">hiqiiiihiqiq")
_NO_SERVER = struct.Struct(">hiqiiidihiqi")
_NEITHER = struct.Struct(">hiqiiiihiqi")

Row = tuple[datetime, int, float | None, int, int, datetime | None]


def pack_rows(rows: Iterable[Row]) -> bytes:
    """A whole COPY stream (signature, rows, trailer) for the samples columns above."""
    out = bytearray(SIGNATURE)
    micros: dict[datetime, int] = {}  # a batch has few distinct instants: convert each once
    for t, tag, value, quality, status, server in rows:
        us = micros.get(t)
        if us is None:
            us = micros[t] = (t - PG_EPOCH) // _US
        if server is not None:
            server_us = micros.get(server)
            if server_us is None:
                server_us = micros[server] = (server - PG_EPOCH) // _US
            if value is not None:
                out += _FULL.pack(6, 8, us, 4, tag, 8, value, 2, quality, 8, status, 8,
                                  server_us)
            else:
                out += _NO_VALUE.pack(6, 8, us, 4, tag, -1, 2, quality, 8, status, 8,
                                      server_us)
        elif value is not None:
            out += _NO_SERVER.pack(6, 8, us, 4, tag, 8, value, 2, quality, 8, status, -1)
        else:
            out += _NEITHER.pack(6, 8, us, 4, tag, -1, 2, quality, 8, status, -1)
    out += TRAILER
    return bytes(out)
