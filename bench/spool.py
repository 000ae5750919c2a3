"""Spool throughput against raw os.write + fsync of the same bytes on the same disk.

    .venv/bin/python bench/spool.py [--batches 200] [--batch 5000] [--pairs 300] [--rounds 3]
                                    [--peek 10] [--dir /var/lib/smeltwatch]

Batches are realistic readings (`spool_codec.realistic_batch`: a few hundred asset/signal
pairs repeated, distinct source and server times, an OPC UA origin). Measured, median of the
rounds, alternating sides to spread machine noise:

- the codec alone, one core: encode and decode readings/s (target ≥ 300k each way);
- `Spool.append([batch])`, one fsync per batch, vs the baseline: `os.write` of a buffer of the
  same size (already encoded, framing included) + `fsync`, one per batch, into one file in
  the same directory. The spool's price over the baseline is encoding, framing and CRC;
- drain: `peek(--peek)` + `consume` until empty (read, CRC, decode, cursor file fsynced per
  turn), vs `os.pread` of the same bytes (page cache, no decode) as a floor.

`--dir` picks the disk (the default is a temporary directory); fsync cost is the disk's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.pipeline.batch import Batch
from collector.pipeline.spool import FRAME_SIZE, Spool, frame
from collector.pipeline.spool_codec import decode, encode, realistic_batch

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def make_batches(n_batches: int, size: int, pairs: int) -> list[Batch]:
    return [realistic_batch(size, pairs, start=T0 + timedelta(hours=i), source=f"plc-{i % 6}")
            for i in range(n_batches)]


def codec_rates(batches: list[Batch]) -> tuple[float, float]:
    """(encode, decode) readings/s over all batches."""
    readings = sum(len(b.readings) for b in batches)
    start = time.perf_counter()
    encoded = [encode(b) for b in batches]
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    for data in encoded:
        decode(data)
    decode_s = time.perf_counter() - start
    return readings / encode_s, readings / decode_s


def run_spool(directory: Path, batches: list[Batch], peek: int) -> tuple[float, float]:
    """(append s, drain s)."""
    shutil.rmtree(directory, ignore_errors=True)
    with Spool(directory, max_bytes=2**40) as spool:
        start = time.perf_counter()
        for batch in batches:
            spool.append([batch])
        append_s = time.perf_counter() - start
        start = time.perf_counter()
        drained = 0
        while items := spool.peek(peek):
            drained += len(items)
            spool.consume(items[-1][0])
        drain_s = time.perf_counter() - start
        assert drained == len(batches) and spool.bytes_used == 0
    return append_s, drain_s


def run_raw(directory: Path, buffers: list[bytes]) -> tuple[float, float]:
    """(write + fsync s, pread s) of the same bytes."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    path = directory / "raw.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        start = time.perf_counter()
        for buf in buffers:
            view = memoryview(buf)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        write_s = time.perf_counter() - start
    finally:
        os.close(fd)
    fd = os.open(path, os.O_RDONLY)
    try:
        start = time.perf_counter()
        offset = 0
        for buf in buffers:
            offset += len(os.pread(fd, len(buf), offset))
        read_s = time.perf_counter() - start
    finally:
        os.close(fd)
    return write_s, read_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch", type=int, default=5_000, help="readings per batch")
    parser.add_argument("--pairs", type=int, default=300, help="distinct asset/signal pairs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--peek", type=int, default=10, help="batches per peek while draining")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (a disk)")
    args = parser.parse_args()

    batches = make_batches(args.batches, args.batch, args.pairs)
    readings = sum(len(b.readings) for b in batches)
    buffers = [frame(p) + p for p in (encode(b) for b in batches)]
    total = sum(len(b) for b in buffers)
    work = Path(tempfile.mkdtemp(prefix="smeltwatch-bench-spool-", dir=args.dir))
    try:
        enc, dec, app, drain, raw_w, raw_r = [], [], [], [], [], []
        for _ in range(args.rounds):
            e, d = codec_rates(batches)
            enc.append(e)
            dec.append(d)
            a, s = run_spool(work / "spool", batches, args.peek)
            app.append(a)
            drain.append(s)
            w, r = run_raw(work / "raw", buffers)
            raw_w.append(w)
            raw_r.append(r)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def rate(seconds: list[float]) -> float:
        return readings / statistics.median(seconds)

    mb = total / 2**20
    print(f"{args.batches} batches x {args.batch:,} readings ({args.pairs} pairs) = "
          f"{readings:,} readings, {mb:.1f} MiB on disk "
          f"({(total - FRAME_SIZE * len(buffers)) / readings:.1f} B/reading + "
          f"{FRAME_SIZE} B/record), rounds={args.rounds} (median), dir {args.dir or '/tmp'}")
    print(f"codec encode                     : {statistics.median(enc):>10,.0f} readings/s "
          f"(target >= 300,000)")
    print(f"codec decode                     : {statistics.median(dec):>10,.0f} readings/s "
          f"(target >= 300,000)")
    print(f"raw os.write + fsync, per batch  : {rate(raw_w):>10,.0f} readings/s "
          f"({mb / statistics.median(raw_w):,.0f} MiB/s)")
    print(f"Spool.append, fsync per batch    : {rate(app):>10,.0f} readings/s "
          f"= {rate(app) / rate(raw_w):.2f} of raw")
    print(f"raw os.pread (page cache)        : {rate(raw_r):>10,.0f} readings/s")
    print(f"Spool.peek({args.peek}) + consume         : {rate(drain):>10,.0f} readings/s "
          f"({args.batch * args.peek:,} readings per consume)")


if __name__ == "__main__":
    main()
