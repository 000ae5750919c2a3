"""The spool codec: whatever a source can put in a Batch comes back from disk unchanged."""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.contracts import (
    EVENT_UNITS,
    DeadLetter,
    EventKind,
    MaterialEvent,
    Quality,
    Reading,
    SlagDestination,
)
from collector.pipeline.batch import Batch
from collector.pipeline.spool_codec import (
    HEADER_SIZE,
    DecodeError,
    decode,
    encode,
    read_header,
    realistic_batch,
)

T0 = datetime(2026, 11, 1, 8, tzinfo=UTC)
NAIVE_MIN = datetime(1900, 1, 1, tzinfo=UTC).replace(tzinfo=None)
NAIVE_MAX = datetime(2200, 1, 1, tzinfo=UTC).replace(tzinfo=None)


# --- comparing: NaN is never == NaN, so compare floats by their bits -------------------------

def _bits(value: object) -> object:
    return struct.pack("<d", value) if isinstance(value, float) else value


def _reading_key(r: Reading) -> tuple[object, ...]:
    return (r.asset, r.signal, _bits(r.value), r.time, r.quality, r.status_code, r.origin,
            r.server_time)


def assert_same_batch(decoded: Batch, original: Batch) -> None:
    assert decoded.source == original.source
    assert decoded.received_at == original.received_at
    assert [_reading_key(r) for r in decoded.readings] == \
        [_reading_key(r) for r in original.readings]
    for got, sent in zip(decoded.readings, original.readings, strict=True):
        for back, given_ in ((got.time, sent.time), (got.server_time, sent.server_time)):
            if given_ is not None and given_.utcoffset() is not None:
                assert back is not None and back.tzinfo is UTC  # normalised to UTC
            elif given_ is not None:
                assert back is not None and back.tzinfo is None  # naive stays naive
        assert type(got.quality) is Quality
    assert decoded.events == original.events
    assert [e.time.utcoffset() for e in decoded.events] == \
        [e.time.utcoffset() for e in original.events]
    assert decoded.dead_letters == original.dead_letters
    assert decoded.on_durable is None


# --- strategies -----------------------------------------------------------------------------

names = st.text(max_size=40) | st.sampled_from(
    ["yulin-1/reduction/furnace-03/retort-07", "榆林-1/还原/炉-03/罐-07", "fåbrik/ofen-1", ""])
offsets = st.timedeltas(min_value=timedelta(hours=-23, minutes=-59),
                        max_value=timedelta(hours=23, minutes=59)).map(timezone)
aware_times = (st.datetimes(NAIVE_MIN, NAIVE_MAX, timezones=offsets | st.just(UTC))
               | st.datetimes(timezones=st.just(UTC)))  # all of datetime's range in UTC
naive_times = st.datetimes(NAIVE_MIN, NAIVE_MAX)
status_codes = (st.integers(0, 0xFFFF_FFFF) | st.integers(0x8000_0000, 0xFFFF_FFFF)
                | st.sampled_from([0, 0x4000_0000, 0x8000_0000, 0x808C_0000, 0xFFFF_FFFF]))
values = st.none() | st.floats() | st.sampled_from(
    [math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308])

readings = st.builds(
    Reading, asset=names, signal=names, value=values,
    time=aware_times | naive_times, quality=st.sampled_from(Quality), status_code=status_codes,
    origin=names, server_time=st.none() | aware_times | naive_times)
readings_as_sources_send_them = st.builds(
    Reading, asset=names, signal=names, value=values, time=aware_times,
    quality=st.sampled_from(Quality), status_code=status_codes, origin=names,
    server_time=st.none() | aware_times)


@st.composite
def material_events(draw: st.DrawFn) -> MaterialEvent:
    kind = draw(st.sampled_from(EventKind))
    return MaterialEvent(
        key=draw(st.text(min_size=1, max_size=200)), kind=kind,
        time=draw(st.datetimes(NAIVE_MIN, NAIVE_MAX, timezones=offsets | st.just(UTC))),
        asset=draw(st.text(min_size=1)),
        quantity=draw(st.floats(min_value=0, allow_nan=False, allow_infinity=False)),
        unit=EVENT_UNITS[kind],
        destination=draw(st.sampled_from(SlagDestination))
        if kind is EventKind.SLAG_SHIPPED else None,
        ticket=draw(st.none() | st.text()), version=draw(st.integers(1, 2**40)),
        origin=draw(st.text()))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12)
dead_letters = st.builds(DeadLetter, origin=st.text(), reason=st.text(), payload=st.binary(),
                         detail=st.dictionaries(st.text(), json_values, max_size=5))

batches = st.builds(
    Batch, source=names,
    readings=st.lists(readings, max_size=30) | st.lists(readings_as_sources_send_them,
                                                        max_size=30),
    events=st.lists(material_events(), max_size=3),
    dead_letters=st.lists(dead_letters, max_size=3),
    received_at=st.floats(allow_nan=False))


# --- tests ----------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(batches)
def test_any_batch_comes_back_from_the_codec_unchanged(batch: Batch) -> None:
    assert_same_batch(decode(encode(batch)), batch)


def test_a_realistic_batch_compares_equal_after_the_round_trip() -> None:
    batch = realistic_batch()
    back = decode(encode(batch))
    assert back == batch
    assert back.readings[0].time.tzinfo is UTC


def test_an_empty_batch_round_trips() -> None:
    batch = Batch(source="mqtt-1", received_at=0.0)
    assert decode(encode(batch)) == batch


def test_times_in_other_offsets_come_back_as_the_same_instant_in_utc() -> None:
    beijing = timezone(timedelta(hours=8))
    sent = Reading("a/b/c", "zone_temp_c", 1.0, T0.astimezone(beijing),
                   server_time=T0.astimezone(beijing) + timedelta(microseconds=1))
    back = decode(encode(Batch(source="s", readings=[sent]))).readings[0]
    assert back == sent
    assert back.time.tzinfo is UTC and back.time.hour == 8
    assert back.server_time == T0 + timedelta(microseconds=1)


def test_bad_status_codes_and_missing_values_survive() -> None:
    sent = [Reading("a/b/c", "vacuum_pa", None, T0, Quality.BAD, 0x808C_0000),
            Reading("a/b/c", "vacuum_pa", math.nan, T0, Quality.BAD, 0xFFFF_FFFF),
            Reading("a/b/c", "vacuum_pa", -math.inf, T0, Quality.UNCERTAIN, 0x4000_0000)]
    back = decode(encode(Batch(source="s", readings=sent))).readings
    assert back[0] == sent[0]
    assert back[1].value is not None and math.isnan(back[1].value)
    assert back[1].status_code == 0xFFFF_FFFF
    assert back[2] == sent[2]


def test_lone_surrogates_in_names_survive() -> None:
    sent = Reading("asset-\udc80", "signal", 1.0, T0)
    assert decode(encode(Batch(source="\ud800", readings=[sent]))).readings == [sent]


def test_the_header_alone_gives_counts_and_received_at() -> None:
    batch = realistic_batch(1234)
    header = read_header(encode(batch)[:HEADER_SIZE])
    assert (header.n_readings, header.n_events, header.n_dead_letters) == (1234, 0, 0)
    assert header.received_at == batch.received_at


@pytest.mark.parametrize("reading", [
    Reading("a", "s", 1.0, T0, status_code=2**32),
    Reading("a", "s", 1.0, T0, status_code=-1),
    Reading("a", "s", 1.0, T0, quality=7),  # type: ignore[arg-type]
    Reading("a", "s", "1.0", T0),  # type: ignore[arg-type]
    Reading("a", "s", 1.0, "2026-11-01T08:00:00Z"),  # type: ignore[arg-type]
    Reading("a", "s", 1.0, datetime.min.replace(tzinfo=timezone(timedelta(hours=1)))),
    Reading(b"a", "s", 1.0, T0),  # type: ignore[arg-type]
])
def test_what_cannot_be_stored_faithfully_is_refused_when_encoding(reading: Reading) -> None:
    with pytest.raises(ValueError):
        encode(Batch(source="s", readings=[reading]))


@given(st.data())
def test_a_truncated_record_is_a_decode_error(data: st.DataObject) -> None:
    sent = Batch(source="s", readings=[Reading("a", "s", 1.0, T0)],
                 dead_letters=[DeadLetter("o", "r", b"\x00\x01", {"k": [1]})])
    encoded = encode(sent)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(DecodeError):
        decode(encoded[:cut])


def test_another_format_version_is_refused() -> None:
    encoded = bytearray(encode(realistic_batch(10)))
    encoded[0] = 99
    with pytest.raises(DecodeError, match="version 99"):
        decode(bytes(encoded))


def test_an_event_the_model_no_longer_accepts_comes_back_as_a_dead_letter() -> None:
    event = MaterialEvent(key="wb-1", kind=EventKind.INGOT_CAST, time=T0, asset="yulin-1/cast",
                          quantity=2.5, unit="t", origin="mqtt:wb")
    encoded = encode(Batch(source="s", events=[event]))
    assert encoded.count(b'"unit": "t"') == 1
    tampered = encoded.replace(b'"unit": "t"', b'"unit": "x"')  # same length, now invalid
    back = decode(tampered)
    assert back.events == []
    [letter] = back.dead_letters
    assert letter.origin == "mqtt:wb"
    assert "no longer validates" in letter.reason
    detail: dict[str, Any] = letter.detail["spooled_event"]
    assert detail["key"] == "wb-1"


def test_dead_letter_detail_that_json_cannot_hold_becomes_text() -> None:
    letter = DeadLetter("o", "r", b"raw", {"at": T0})
    [back] = decode(encode(Batch(source="s", dead_letters=[letter]))).dead_letters
    assert back.detail == {"at": str(T0)}
