"""The disk spool: real files in tmp_path, real crashes in a child process, no mocks."""

from __future__ import annotations

import logging
import math
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import textwrap
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.contracts import DeadLetter, EventKind, MaterialEvent, Quality, Reading
from collector.pipeline.batch import Batch
from collector.pipeline.spool import (
    FRAME_SIZE,
    MAGIC,
    Spool,
    SpoolCursor,
    SpoolFull,
    SpoolLocked,
    frame,
    measured_bytes_per_reading,
    spool_bytes_for,
)
from collector.pipeline.spool_codec import encode, realistic_batch
from tests.pipeline.test_spool_codec import assert_same_batch

T0 = datetime(2026, 11, 1, 8, tzinfo=UTC)
MB = 2**20


def numbered(i: int, n_readings: int = 20) -> Batch:
    """Batch number i: its source, values and received_at all say which one it is."""
    readings = [Reading(f"yulin-1/reduction/furnace-01/retort-{k % 5:02d}", "zone_temp_c",
                        float(i * 1000 + k), T0 + timedelta(seconds=i, milliseconds=k),
                        origin="opcua:test") for k in range(n_readings)]
    if i % 7 == 3:
        readings.append(Reading("yulin-1/reduction/furnace-01", "vacuum_pa", None, T0,
                                Quality.BAD, 0x808C_0000))
    events = [MaterialEvent(key=f"cast-{i}", kind=EventKind.INGOT_CAST, time=T0, asset="a/b",
                            quantity=1.5, unit="t")] if i % 5 == 0 else []
    letters = [DeadLetter("mqtt:x", "not JSON", b"\xff" * i, {"i": i})] if i % 6 == 1 else []
    return Batch(source=f"batch-{i}", readings=readings, events=events, dead_letters=letters,
                 received_at=1.8e9 + i)


def record_size(batch: Batch) -> int:
    return FRAME_SIZE + len(encode(batch))


def drain(spool: Spool, chunk: int = 5) -> list[Batch]:
    out: list[Batch] = []
    while items := spool.peek(chunk):
        out += [b for _, b in items]
        spool.consume(items[-1][0])
    return out


def files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("*.seg"))}


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


def test_the_constructor_touches_no_disk(tmp_path: Path) -> None:
    Spool(tmp_path / "spool", max_bytes=MB)
    assert not (tmp_path / "spool").exists()


def test_batches_come_out_oldest_first_across_many_segments(tmp_path: Path) -> None:
    sent = [numbered(i) for i in range(60)]
    with Spool(tmp_path / "spool", max_bytes=10 * MB, segment_bytes=4096) as spool:
        pos = 0
        for size in [1, 7, 3, 1, 12, 5, 2, 9, 20]:
            spool.append(sent[pos:pos + size])
            pos += size
        assert pos == len(sent)
        assert len(segments(tmp_path / "spool")) > 10
        assert spool.batches == 60
        assert spool.readings == sum(len(b.readings) for b in sent)
        got = drain(spool, chunk=7)
        assert spool.batches == spool.readings == spool.bytes_used == 0
        assert spool.oldest_received_at is None
    assert [b.source for b in got] == [b.source for b in sent]
    for back, original in zip(got, sent, strict=True):
        assert_same_batch(back, original)
    assert segments(tmp_path / "spool") == []


def test_peek_does_not_consume(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=MB) as spool:
        spool.append([numbered(i) for i in range(4)])
        first = spool.peek(3)
        again = spool.peek(10)
        assert [c for c, _ in first] == [c for c, _ in again[:3]]
        assert len(again) == 4
        spool.consume(first[1][0])
        assert [b.source for _, b in spool.peek(10)] == ["batch-2", "batch-3"]


def test_fully_consumed_segments_are_deleted_as_the_drain_goes(tmp_path: Path) -> None:
    size = record_size(numbered(0))
    with Spool(tmp_path, max_bytes=MB, segment_bytes=2 * size + 10) as spool:
        spool.append([numbered(i) for i in range(6)])
        assert len(segments(tmp_path)) == 3
        items = spool.peek(3)
        spool.consume(items[-1][0])
        assert len(segments(tmp_path)) == 2  # the first; the second still holds batch 3
        spool.consume(spool.peek(1)[0][0])
        assert len(segments(tmp_path)) == 1


def test_a_restart_keeps_the_pending_batches_and_the_cursor(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=MB, segment_bytes=4096) as spool:
        spool.append([numbered(i) for i in range(10)])
        spool.consume(spool.peek(4)[2][0])  # batches 0..2 are in the database
    reopened = Spool(tmp_path, max_bytes=MB, segment_bytes=4096)
    report = reopened.open()
    try:
        assert report.batches == reopened.batches == 7
        assert report.corrupted_records == report.torn_tail_bytes == 0
        assert report.oldest_received_at == numbered(3).received_at
        reopened.append([numbered(10)])
        got = drain(reopened)
    finally:
        reopened.close()
    assert [b.source for b in got] == [f"batch-{i}" for i in range(3, 11)]
    assert_same_batch(got[0], numbered(3))


def test_segment_numbers_are_never_reused_after_everything_was_consumed(
        tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=MB) as spool:
        spool.append([numbered(0)])
        drain(spool)
    with Spool(tmp_path, max_bytes=MB) as spool:
        spool.append([numbered(1)])  # must not land in a segment the cursor calls consumed
    with Spool(tmp_path, max_bytes=MB) as spool:
        assert [b.source for _, b in spool.peek(5)] == ["batch-1"]


@pytest.mark.parametrize("damage", ["cut 5 bytes", "cut into the frame header",
                                    "append garbage", "append a half record"])
def test_a_torn_tail_is_cut_and_the_earlier_batches_survive(tmp_path: Path,
                                                            damage: str) -> None:
    with Spool(tmp_path, max_bytes=MB, segment_bytes=4096) as spool:
        spool.append([numbered(i) for i in range(8)])
    last = segments(tmp_path)[-1]
    data = last.read_bytes()
    survivors = 8
    if damage == "cut 5 bytes":
        last.write_bytes(data[:-5])
        survivors = 7
    elif damage == "cut into the frame header":
        last_start = len(data) - record_size(numbered(7))
        last.write_bytes(data[:last_start + 6])
        survivors = 7
    elif damage == "append garbage":
        last.write_bytes(data + random.Random(1).randbytes(300))
    else:
        record = MAGIC + encode(numbered(99))
        last.write_bytes(data + record[: len(record) // 2])
    spool = Spool(tmp_path, max_bytes=MB, segment_bytes=4096)
    report = spool.open()
    try:
        assert report.torn_tail_bytes > 0
        assert report.corrupted_records == 0
        assert report.batches == survivors
        spool.append([numbered(50)])  # lands right after the last intact record
    finally:
        spool.close()
    with Spool(tmp_path, max_bytes=MB, segment_bytes=4096) as spool:
        got = drain(spool)
        assert spool.corrupted_records == 0
    assert [b.source for b in got] == [f"batch-{i}" for i in range(survivors)] + ["batch-50"]


@pytest.mark.parametrize("where", ["payload", "length field", "magic", "crc"])
def test_a_flipped_byte_in_the_middle_record_is_skipped_and_counted(
        tmp_path: Path, where: str, caplog: pytest.LogCaptureFixture) -> None:
    with Spool(tmp_path, max_bytes=MB) as spool:
        spool.append([numbered(i) for i in range(3)])
    [seg] = segments(tmp_path)
    data = bytearray(seg.read_bytes())
    start = record_size(numbered(0))
    offset = {"payload": start + FRAME_SIZE + record_size(numbered(1)) // 2,
              "length field": start + 5, "magic": start, "crc": start + 9}[where]
    data[offset] ^= 0x10
    seg.write_bytes(bytes(data))
    spool = Spool(tmp_path, max_bytes=MB)
    with caplog.at_level(logging.WARNING, logger="collector.pipeline.spool"):
        report = spool.open()
    try:
        assert report.corrupted_records == spool.corrupted_records == 1
        assert report.torn_tail_bytes == 0
        assert spool.batches == 2
        got = drain(spool)
    finally:
        spool.close()
    assert [b.source for b in got] == ["batch-0", "batch-2"]
    assert_same_batch(got[1], numbered(2))
    assert "skipping" in caplog.text
    assert len(list((tmp_path / "quarantine").iterdir())) == 1


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_flipped_byte_costs_exactly_the_record_it_hits(data: st.DataObject) -> None:
    sent = [numbered(i, n_readings=3) for i in range(6)]
    size = max(record_size(b) for b in sent)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        with Spool(directory, max_bytes=MB, segment_bytes=3 * size) as spool:
            spool.append(sent)
        layout = [(seg, start) for seg in segments(directory)
                  for start in record_starts(seg.read_bytes())]
        assert len(layout) == len(sent) and len(segments(directory)) == 2
        victim = data.draw(st.integers(0, len(sent) - 1), label="record")
        seg, start = layout[victim]
        end = start + record_size(sent[victim])
        where = data.draw(st.integers(start, end - 1), label="byte")
        damaged = bytearray(seg.read_bytes())
        damaged[where] ^= data.draw(st.integers(1, 255), label="xor")
        seg.write_bytes(bytes(damaged))
        spool = Spool(directory, max_bytes=MB, segment_bytes=3 * size)
        report = spool.open()
        try:
            got = drain(spool)
        finally:
            spool.close()
    assert [b.source for b in got] == [b.source for i, b in enumerate(sent) if i != victim]
    last_of_newest = victim == len(sent) - 1
    assert report.corrupted_records == (0 if last_of_newest else 1)
    assert (report.torn_tail_bytes > 0) == last_of_newest


def record_starts(data: bytes) -> list[int]:
    starts, pos = [], 0
    while pos < len(data):
        starts.append(pos)
        (length,) = struct.unpack_from("<I", data, pos + 4)
        pos += FRAME_SIZE + length
    return starts


def test_bit_rot_after_open_is_found_by_peek(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=MB) as spool:
        spool.append([numbered(i) for i in range(3)])
        [seg] = segments(tmp_path)
        data = bytearray(seg.read_bytes())
        data[record_size(numbered(0)) + 40] ^= 0xFF
        seg.write_bytes(bytes(data))
        assert [b.source for b in drain(spool)] == ["batch-0", "batch-2"]
        assert spool.corrupted_records == 1
        assert spool.batches == 0


def append_raw_record(segment: Path, payload: bytes) -> None:
    """A record that is framed and CRC-intact, whatever its payload says."""
    segment.write_bytes(segment.read_bytes() + frame(payload) + payload)


def test_an_intact_record_from_an_unknown_format_version_is_set_aside_at_open(
        tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=MB) as spool:
        spool.append([numbered(0)])
    [seg] = segments(tmp_path)
    future = bytearray(encode(numbered(1)))
    future[0] = 2  # a newer codec wrote it
    append_raw_record(seg, bytes(future))
    with Spool(tmp_path, max_bytes=MB) as spool:
        assert spool.corrupted_records == 1
        spool.append([numbered(2)])
        assert [b.source for b in drain(spool)] == ["batch-0", "batch-2"]
    [copy] = (tmp_path / "quarantine").iterdir()
    assert copy.read_bytes().endswith(bytes(future))  # kept for a person, not cut as a tail


def test_an_intact_record_that_does_not_decode_is_set_aside_not_retried(
        tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=MB) as spool:
        spool.append([numbered(0)])
    [seg] = segments(tmp_path)
    broken = encode(numbered(1))[:-3] + b"???"  # a good header, an inconsistent body
    append_raw_record(seg, broken)
    with Spool(tmp_path, max_bytes=MB) as spool:
        spool.append([numbered(2)])
        assert spool.batches == 3
        assert [b.source for _, b in spool.peek(10)] == ["batch-0", "batch-2"]
        assert spool.corrupted_records == 1
        assert spool.batches == 2
        assert [b.source for b in drain(spool)] == ["batch-0", "batch-2"]
        assert segments(tmp_path) == []


def test_appends_from_many_threads_all_arrive_in_each_threads_order(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=10 * MB, segment_bytes=8192) as spool:
        def producer(thread: int) -> None:
            for i in range(25):
                spool.append([numbered(thread * 100 + i, n_readings=5)])

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(producer, range(4)))
        got = [int(b.source.removeprefix("batch-")) for b in drain(spool, chunk=9)]
    assert sorted(got) == sorted(t * 100 + i for t in range(4) for i in range(25))
    for thread in range(4):
        mine = [n for n in got if n // 100 == thread]
        assert mine == sorted(mine)


def test_a_full_spool_refuses_the_whole_append_and_writes_nothing(tmp_path: Path) -> None:
    batch = [realistic_batch(50, 10, source=f"b-{i:03d}") for i in range(4)]  # all one size
    size = record_size(batch[0])
    spool = Spool(tmp_path, max_bytes=3 * size + 10, segment_bytes=size)  # a record a segment
    spool.open()
    try:
        spool.append(batch[:2])
        before = files(tmp_path)
        with pytest.raises(SpoolFull, match=r"full: .* bytes used .* oldest received") as info:
            spool.append(batch[2:])  # the first of the two would fit: still nothing is written
        assert "h ago" in str(info.value)
        assert files(tmp_path) == before
        assert spool.full_rejections == 1
        assert spool.batches == 2
        assert spool.fill_ratio == pytest.approx(2 * size / (3 * size + 10))
        spool.consume(spool.peek(1)[0][0])  # the database took batch 0: its segment goes
        spool.append(batch[2:])
        assert [b.source for b in drain(spool)] == ["b-001", "b-002", "b-003"]
    finally:
        spool.close()


def test_spool_full_says_how_many_hours_the_spool_holds_at_the_configured_rate(
        tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=1000, readings_per_s=0.01) as spool, \
            pytest.raises(SpoolFull, match=r"holds ≈ [\d.]+ h at 0 readings/s"):
        spool.append([numbered(0, n_readings=100)])


def test_a_batch_that_cannot_be_encoded_writes_nothing(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=MB) as spool:
        spool.append([numbered(0)])
        before = files(tmp_path)
        bad = Batch(source="s", readings=[Reading("a", "s", 1.0, T0, status_code=-1)])
        with pytest.raises(ValueError, match="status code"):
            spool.append([numbered(1), bad])
        assert files(tmp_path) == before
        assert spool.batches == 1


def test_gauges_follow_appends_and_consumes(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=MB)
    assert spool.batches == spool.readings == spool.bytes_used == 0
    assert spool.oldest_received_at is None
    with spool:
        spool.append([numbered(4), numbered(5, n_readings=3)])
        assert spool.batches == 2
        assert spool.readings == 20 + 3
        assert spool.bytes_used == record_size(numbered(4)) + record_size(numbered(5, 3))
        assert spool.fill_ratio == spool.bytes_used / MB
        assert spool.oldest_received_at == numbered(4).received_at
        spool.consume(spool.peek(1)[0][0])
        assert (spool.batches, spool.readings) == (1, 3)
        assert spool.oldest_received_at == numbered(5).received_at
        assert spool.corrupted_records == spool.full_rejections == 0


def test_a_second_open_of_the_same_directory_is_refused(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=MB), pytest.raises(SpoolLocked):
        Spool(tmp_path, max_bytes=MB).open()


def test_cursors_must_come_from_this_spool(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=MB) as spool:
        spool.append([numbered(i) for i in range(3)])
        [(first, _), (second, _), _] = spool.peek(3)
        with pytest.raises(ValueError, match="record boundary"):
            spool.consume(SpoolCursor(first.segment, first.offset + 1))
        with pytest.raises(ValueError, match="not in this spool"):
            spool.consume(SpoolCursor(first.segment + 5, 10))
        spool.consume(second)
        spool.consume(first)  # already consumed: nothing happens
        assert spool.batches == 1


def test_a_damaged_cursor_file_redelivers_rather_than_loses(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=MB) as spool:
        spool.append([numbered(i) for i in range(3)])
        spool.consume(spool.peek(2)[1][0])
    (tmp_path / "cursor").write_bytes(b"\x00" * 7)
    with Spool(tmp_path, max_bytes=MB) as spool:
        assert [b.source for b in drain(spool)] == ["batch-0", "batch-1", "batch-2"]


def test_spool_bytes_for_sizes_in_hours_of_data() -> None:
    assert spool_bytes_for(2.0, 1000.0, bytes_per_reading=40.0) == 2 * 3600 * 1000 * 40
    measured = measured_bytes_per_reading()
    assert 10 < measured < 100
    assert spool_bytes_for(1.0, 10_000.0) == math.ceil(3600 * 10_000 * measured)
    with pytest.raises(ValueError):
        spool_bytes_for(-1.0, 10.0)


CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from collector.pipeline.spool import Spool
    from collector.pipeline.spool_codec import realistic_batch

    directory, start = Path(sys.argv[1]), int(sys.argv[2])
    spool = Spool(directory, max_bytes=2**30, segment_bytes=64 * 1024)
    spool.open()
    i = start
    while True:
        spool.append([realistic_batch(150 + i % 50, 40, source=f"seq-{i}")])
        print(i, flush=True)  # only after append returned: an acknowledgement
        i += 1
""")


def expected(i: int) -> Batch:
    return realistic_batch(150 + i % 50, 40, source=f"seq-{i}")


def test_every_acknowledged_append_survives_sigkill(tmp_path: Path) -> None:
    """SIGKILL at a random moment of an append loop, twice, restarting in between. (The
    page cache survives SIGKILL; a power cut is covered by the fsyncs, not by this test.)"""
    acked: list[int] = []
    rng = random.Random(4)
    for _ in range(2):
        start = acked[-1] + 1 if acked else 0
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), str(start)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert child.stdout is not None
        target = len(acked) + rng.randint(20, 60)
        while len(acked) < target:
            line = child.stdout.readline()
            assert line, f"child died: {child.stderr.read() if child.stderr else ''}"
            acked.append(int(line))
        os.kill(child.pid, signal.SIGKILL)
        rest, _ = child.communicate()
        acked += [int(line) for line in rest.split()]  # printed before the kill landed
        assert child.returncode == -signal.SIGKILL
    with Spool(tmp_path, max_bytes=2**30, segment_bytes=64 * 1024) as spool:
        assert spool.corrupted_records == 0
        got = {b.source: b for b in drain(spool, chunk=50)}
    for i in acked:
        assert f"seq-{i}" in got, f"acknowledged batch {i} was lost"
        assert got[f"seq-{i}"] == expected(i)
    assert set(got) <= {f"seq-{i}" for i in range(acked[-1] + 2)}  # at most one unacked
