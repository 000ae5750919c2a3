"""The MQTT payload decoder: every documented format, every kind of garbage, and a generated
corpus in which no message raises and no value vanishes."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.contracts import (
    EVENT_UNITS,
    STATUS_BAD,
    STATUS_UNCERTAIN,
    DeadLetter,
    EventKind,
    Quality,
    Reading,
)
from collector.sources.mqtt.decoders import (
    Decoded,
    JsonPathError,
    compile_path,
    decode,
)
from collector.sources.mqtt.topics import TopicMap
from tests.sources.mqtt import (
    SITE,
    SOURCE,
    SPARKPLUG_TOPIC,
    VENDOR_TOPIC,
    demo_plant,
    topic,
    vendor_plant,
)

RECEIVED = datetime(2026, 11, 1, 8, 0, 5, tzinfo=UTC)
T0 = "2026-11-01T08:00:00.000Z"
T0_UTC = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
T0_MS = int(T0_UTC.timestamp() * 1000)
PREFIX = f"mqtt:{SOURCE}"
GAS_01 = topic("gas-furnace-01", "gas_volume_nm3_total")   # unit kNm³, scale 0.1 (vendor)
GAS_02 = topic("gas-furnace-02", "gas_volume_nm3_total")
POWER_CALC = topic("elec-calcination", "power_kw")           # scale 2, offset -10 (vendor)
LHV = topic("lhv-analyser", "gas_lhv_mj_per_nm3")
BATCH = f"smelter/v1/{SITE}/_batch/{SOURCE}"
EVENTS = f"smelter/v1/{SITE}/_events"

DEMO_MAP = TopicMap(demo_plant(), SOURCE)
VENDOR_MAP = TopicMap(vendor_plant(), SOURCE)


def run(message_topic: str, payload: Any, topic_map: TopicMap = DEMO_MAP,
        **limits: Any) -> Decoded:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return decode(message_topic, raw, RECEIVED, topic_map, PREFIX, **limits)


def one_dead_letter(out: Decoded) -> DeadLetter:
    assert not out.readings and not out.events, out
    (letter,) = out.dead_letters
    return letter


def one_reading(out: Decoded) -> Reading:
    assert not out.dead_letters, out.dead_letters
    (reading,) = out.readings
    return reading


# --- the documented formats, as the simulator publishes them ---------------------------------

def test_a_meter_value_on_its_topic_is_one_good_reading() -> None:
    out = run(GAS_02, {"t": T0, "v": 1234.5, "q": "good", "seq": 17})
    assert one_reading(out) == Reading(
        "yulin-1/utilities/gas-furnace-02", "gas_volume_nm3_total", 1234.5, T0_UTC,
        Quality.GOOD, 0, f"{PREFIX}:{GAS_02}")
    assert out.seq == 17
    assert out.stamped_on_receipt == 0


def test_a_bad_value_keeps_its_full_status_code_and_may_be_null() -> None:
    sensor_failure = 0x808C_0000
    reading = one_reading(run(LHV, {"t": T0, "v": None, "q": "bad", "status": sensor_failure}))
    assert (reading.value, reading.quality, reading.status_code) == (
        None, Quality.BAD, sensor_failure)


def test_an_explicit_status_wins_over_q() -> None:
    not_accurate = 0x40A4_0000
    reading = one_reading(run(LHV, {"t": T0, "v": 17.5, "q": "good", "status": not_accurate}))
    assert (reading.quality, reading.status_code) == (Quality.UNCERTAIN, not_accurate)


@pytest.mark.parametrize(("q", "quality", "status"), [
    ("uncertain", Quality.UNCERTAIN, STATUS_UNCERTAIN),
    ("Bad", Quality.BAD, STATUS_BAD),
])
def test_q_gives_the_generic_status(q: str, quality: Quality, status: int) -> None:
    reading = one_reading(run(LHV, {"t": T0, "v": 17.5, "q": q}))
    assert (reading.quality, reading.status_code) == (quality, status)


def test_a_value_without_q_or_status_is_good() -> None:
    assert one_reading(run(LHV, {"t": T0, "v": 17.5})).quality is Quality.GOOD


def test_a_time_zone_offset_is_normalised_to_utc() -> None:
    reading = one_reading(run(LHV, {"t": "2026-11-01T16:00:00+08:00", "v": 17.5}))
    assert reading.time == T0_UTC
    assert reading.time.tzinfo is UTC


def test_epoch_milliseconds_in_ts_are_a_timestamp() -> None:
    reading = one_reading(run(LHV, {"ts": T0_MS + 250, "v": 17.5}))
    assert reading.time == T0_UTC + timedelta(milliseconds=250)


def test_a_value_without_a_timestamp_is_stamped_on_receipt_and_counted() -> None:
    out = run(LHV, {"v": 17.5})
    assert one_reading(out).time == RECEIVED
    assert out.stamped_on_receipt == 1


def test_a_batch_is_one_reading_per_item_through_each_item_topic() -> None:
    items = [{"topic": GAS_02, "t": T0, "v": 10.0, "q": "good"},
             {"topic": LHV, "t": T0, "v": None, "q": "bad", "status": STATUS_BAD},
             {"topic": topic("weather", "ambient_temp_c"), "t": T0, "v": -12.5, "q": "good"}]
    out = run(BATCH, {"seq": 18, "values": items})
    assert not out.dead_letters
    assert [(r.asset, r.signal, r.value) for r in out.readings] == [
        ("yulin-1/utilities/gas-furnace-02", "gas_volume_nm3_total", 10.0),
        ("yulin-1/utilities/lhv-analyser", "gas_lhv_mj_per_nm3", None),
        ("yulin-1/utilities/weather", "ambient_temp_c", -12.5)]
    assert {r.origin for r in out.readings} == {f"{PREFIX}:{BATCH}"}
    assert out.seq == 18


def test_one_bad_batch_item_is_one_dead_letter_and_the_rest_is_kept() -> None:
    items = [{"topic": GAS_02, "t": T0, "v": 1.0},
             {"topic": GAS_02, "t": T0, "v": "12.5"},
             {"topic": "smelter/v1/yulin-1/utilities/gas-furnace-09/gas_volume_nm3_total",
              "t": T0, "v": 3.0},
             {"topic": GAS_02, "t": "2026-11-01T08:00:03Z", "v": 4.0}]
    out = run(BATCH, {"seq": 5, "values": items})
    assert [r.value for r in out.readings] == [1.0, 4.0]
    wrong_type, unknown = out.dead_letters
    assert wrong_type.reason == "value must be a number, not a string '12.5'"
    assert wrong_type.detail == {"index": 1}
    assert json.loads(wrong_type.payload) == items[1]
    assert unknown.reason.startswith("no binding for topic 'smelter/v1/yulin-1/utilities/"
                                     "gas-furnace-09/gas_volume_nm3_total'")
    assert unknown.detail["index"] == 2
    assert unknown.origin == f"{PREFIX}:{BATCH}"


def test_a_material_event_becomes_a_material_event() -> None:
    payload = {"seq": 19, "key": "yulin-1/refining/refining-1/cast3", "kind": "ingot_cast",
               "time": T0, "asset": "yulin-1/refining/refining-1", "quantity": 1.93,
               "unit": "t", "destination": None, "ticket": None}
    out = run(f"{EVENTS}/ingot_cast", payload)
    assert not out.dead_letters
    (event,) = out.events
    assert (event.key, event.kind, event.time, event.asset, event.quantity, event.unit) == (
        "yulin-1/refining/refining-1/cast3", EventKind.INGOT_CAST, T0_UTC,
        "yulin-1/refining/refining-1", 1.93, "t")
    assert event.time.tzinfo is UTC
    assert event.origin == f"{PREFIX}:{EVENTS}/ingot_cast"
    assert out.seq == 19


def test_an_event_asset_below_the_site_gets_the_site_in_front() -> None:
    payload = {"key": "ship-7", "kind": "slag_shipped", "time": "2026-11-01T16:00:00+08:00",
               "asset": "slag-yard/yard", "quantity": 31.2, "unit": "t",
               "destination": "cement", "ticket": "WB2-0007", "version": 2}
    (event,) = run(f"{EVENTS}/slag_shipped", payload).events
    assert (event.asset, event.version, event.ticket) == ("yulin-1/slag-yard/yard", 2,
                                                          "WB2-0007")
    assert event.time == T0_UTC


def test_what_the_simulator_publishes_decodes_to_what_it_meant() -> None:
    # The collector decodes from the README; the simulator's own encoder is the cross-check.
    from simulators import payloads
    from simulators.model.feed import SimEvent

    t = T0_UTC
    item = payloads.value_item(t, 12.25, 0x808C_0000) | {"topic": GAS_02}
    batch = run(BATCH, payloads.batch([item, payloads.value_item(t, 3.5, 0) | {"topic": LHV}],
                                      seq=7))
    assert [(r.value, r.status_code, r.time) for r in batch.readings] == [
        (12.25, 0x808C_0000, t), (3.5, 0, t)]
    single = one_reading(run(LHV, payloads.single(t, 17.5, 0, seq=8)))
    assert (single.value, single.time) == (17.5, t)
    event = SimEvent(EventKind.FESI_CONSUMED, "yulin-1/reduction/furnace-02/retort-11", 0.0,
                     0.42, "f2r11/c3")
    (decoded,) = run(f"{EVENTS}/fesi_consumed", payloads.event(event, t, seq=9)).events
    assert (decoded.asset, decoded.quantity, decoded.unit) == (event.asset, 0.42, "t")


# --- vendor formats: scale/offset, units, json_path, wildcards, Sparkplug ----------------------

def test_scale_offset_and_unit_bring_the_value_into_the_catalogue_unit() -> None:
    # gas-furnace-01 reports in kNm³ with scale 0.1; elec-calcination power: 2x - 10
    gas = one_reading(run(GAS_01, {"t": T0, "v": 123.0}, VENDOR_MAP))
    assert gas.value == pytest.approx(12_300.0)
    power = one_reading(run(POWER_CALC, {"t": T0, "v": 55.0}, VENDOR_MAP))
    assert power.value == pytest.approx(100.0)


def test_a_json_path_reads_the_value_from_a_vendor_object() -> None:
    payload = {"ts": T0_MS, "data": {"totals": [1.5, 48_213.25, 7.0]}, "q": "good"}
    reading = one_reading(run(VENDOR_TOPIC, payload, VENDOR_MAP))
    assert (reading.asset, reading.signal, reading.value, reading.time) == (
        "yulin-1/utilities/water-main", "water_m3_total", 48_213.25, T0_UTC)


@pytest.mark.parametrize(("payload", "reason"), [
    ({"data": {"totals": [1.0]}}, "json_path 'data.totals[1]': no item [1] at 'data.totals'"),
    ({"data": {"total": [1.0]}}, "json_path 'data.totals[1]': no key 'totals' at 'data'"),
    ({"data": [1.0]}, "json_path 'data.totals[1]': no key 'totals' at 'data'"),
    ({"values": []}, "json_path 'data.totals[1]': no key 'data' at the top level"),
])
def test_a_json_path_that_finds_nothing_is_a_dead_letter(payload: Any, reason: str) -> None:
    assert one_dead_letter(run(VENDOR_TOPIC, payload, VENDOR_MAP)).reason == reason


def test_json_path_syntax() -> None:
    assert compile_path("temp") == ("temp",)
    assert compile_path("data.points[0].v") == ("data", "points", 0, "v")
    assert compile_path("m[1][0]") == ("m", 1, 0)
    assert compile_path("Analyser/LHV") == ("Analyser/LHV",)
    for bad in ("", "a..b", ".a", "a.", "[0]", "a[x]", "a[-1]", "a]"):
        with pytest.raises(JsonPathError):
            compile_path(bad)


def test_a_wildcard_address_feeds_its_signal_from_any_matching_topic() -> None:
    reading = one_reading(run("vendor/gw-7/port-3/ambient", {"t": T0, "v": 260.15},
                              VENDOR_MAP))
    assert (reading.asset, reading.signal) == ("yulin-1/utilities/weather", "ambient_temp_c")
    assert reading.value == pytest.approx(-13.0)  # K → °C


def test_sparkplug_metrics_map_to_bindings_by_topic_and_metric_name() -> None:
    payload = {"timestamp": T0_MS, "seq": 4, "metrics": [
        {"name": "Analyser/LHV.PV", "timestamp": T0_MS - 1000, "value": 1720.0,
         "datatype": "Float"},
        {"name": "Yard/Stock", "value": 182_500, "dataType": "Int64"}]}
    out = run(SPARKPLUG_TOPIC, payload, VENDOR_MAP)
    assert not out.dead_letters
    lhv, stock = out.readings
    assert (lhv.asset, lhv.signal, lhv.time) == (
        "yulin-1/utilities/lhv-analyser", "gas_lhv_mj_per_nm3", T0_UTC - timedelta(seconds=1))
    assert lhv.value == pytest.approx(1720.0 * 0.004_186_8)  # kcal/Nm³ → MJ/Nm³
    assert (stock.asset, stock.value, stock.time) == ("yulin-1/slag-yard/yard", 182.5, T0_UTC)
    assert out.seq == 4


def test_a_sparkplug_message_without_metrics_leaves_a_trace() -> None:
    letter = one_dead_letter(run(SPARKPLUG_TOPIC, {"timestamp": T0_MS, "metrics": []},
                                 VENDOR_MAP))
    assert (letter.reason, letter.detail) == ("empty 'metrics' list: no values to store",
                                              {"metrics": 0})


def test_a_null_sparkplug_metric_is_bad_without_a_value() -> None:
    payload = {"timestamp": T0_MS, "metrics": [
        {"name": "Yard/Stock", "value": None},
        {"name": "Analyser/LHV.PV", "is_null": True, "value": 0}]}
    readings = run(SPARKPLUG_TOPIC, payload, VENDOR_MAP).readings
    assert [(r.value, r.quality, r.status_code) for r in readings] == [
        (None, Quality.BAD, STATUS_BAD)] * 2


def test_sparkplug_metrics_without_a_binding_are_dead_letters_one_each() -> None:
    payload = {"timestamp": T0_MS, "metrics": [
        {"name": "Yard/Stock", "value": 1000}, {"name": "Yard/Level", "value": 3},
        {"alias": 7, "value": 4}, {"name": "Analyser/LHV.PV", "value": True}]}
    out = run(SPARKPLUG_TOPIC, payload, VENDOR_MAP)
    assert [r.signal for r in out.readings] == ["slag_stock_t"]
    unbound, alias_only, boolean = out.dead_letters
    assert unbound.reason.startswith("no binding for metric 'Yard/Level' on topic "
                                     f"'{SPARKPLUG_TOPIC}'")
    assert unbound.detail == {"index": 1, "metric": "Yard/Level"}
    assert alias_only.reason.startswith("metric without a 'name'")
    assert boolean.reason == "value must be a number, not a boolean True"


def test_sparkplug_on_a_topic_without_bindings_is_one_dead_letter_counting_its_metrics() -> None:
    payload = {"timestamp": T0_MS, "metrics": [{"name": "a", "value": 1}] * 3}
    letter = one_dead_letter(run("spBv1.0/yulin/DDATA/edge-9/x", payload, VENDOR_MAP))
    assert letter.reason.startswith("no binding for topic 'spBv1.0/yulin/DDATA/edge-9/x'")
    assert letter.detail == {"metrics": 3}


def test_one_topic_with_two_json_paths_gives_two_readings_or_a_dead_letter_each() -> None:
    # outside Sparkplug the json_path is a path: 'Analyser/LHV.PV' is key 'PV' in 'Analyser/LHV'
    payload = {"t": T0, "Analyser/LHV": {"PV": 1720.0}, "Yard/Stock": "full"}
    out = run(SPARKPLUG_TOPIC, payload, VENDOR_MAP)
    assert [r.signal for r in out.readings] == ["gas_lhv_mj_per_nm3"]
    (letter,) = out.dead_letters
    assert letter.reason == "value must be a number, not a string 'full'"
    assert letter.detail == {"signal": "slag_stock_t", "json_path": "Yard/Stock"}


# --- values and timestamps that cannot be stored -------------------------------------------

@pytest.mark.parametrize(("payload", "reason"), [
    ({"t": T0, "v": True}, "value must be a number, not a boolean True"),
    ({"t": T0, "v": "12.5"}, "value must be a number, not a string '12.5'"),
    ({"t": T0, "v": {"x": 1}}, "value must be a number, not an object {'x': 1}"),
    ({"t": T0, "v": [1]}, "value must be a number, not an array [1]"),
    ({"t": T0, "v": None}, "value is null with good quality (a missing value needs q 'bad' or "
                           "'uncertain', or a Bad/Uncertain status)"),
    ({"t": T0, "q": "good"}, "no value: the payload has no 'v' (a value may be left out only "
                             "with q 'bad' or 'uncertain')"),
    ({"t": T0, "v": 1, "q": "ok"}, "quality q='ok' is not 'good', 'uncertain' or 'bad'"),
    ({"t": T0, "v": 1, "status": -1}, "status -1 is not an OPC UA status code (an integer "
                                      "0…4294967295)"),
    ({"t": T0, "v": 1, "status": "bad"}, "status 'bad' is not an OPC UA status code (an integer "
                                         "0…4294967295)"),
    ({"t": T0, "v": 10**400}, f"value {str(10**400)[:59]}… is too large for a double"),
])
def test_a_value_that_is_not_a_number_is_a_dead_letter(payload: dict[str, Any],
                                                       reason: str) -> None:
    letter = one_dead_letter(run(LHV, payload))
    assert letter.reason == reason
    assert letter.origin == f"{PREFIX}:{LHV}"
    assert letter.payload == json.dumps(payload).encode()


@pytest.mark.parametrize(("t", "reason"), [
    ("2026-11-01T08:00:00", "timestamp without a time zone: '2026-11-01T08:00:00' (add 'Z' or "
                            "an offset such as '+08:00')"),
    ("2026-11-01", "timestamp without a time zone: '2026-11-01'"),
    ("yesterday", "timestamp 'yesterday' is not ISO 8601"),
    (1762000000000, "timestamp t=1762000000000 must be an ISO 8601 string; send epoch "
                    "milliseconds as 'ts'"),
    ("2026-11-03T08:00:06Z", "timestamp in the future: 2026-11-03T08:00:06+00:00 is more than "
                             "1 day, 0:00:00 ahead of its receipt at 2026-11-01T08:00:05+00:00"),
    ("1970-01-21T09:33:20Z", "timestamp before 2000-01-01T00:00:00+00:00"),
])
def test_an_unusable_timestamp_is_a_dead_letter(t: Any, reason: str) -> None:
    assert one_dead_letter(run(LHV, {"t": t, "v": 1.0})).reason.startswith(reason)


@pytest.mark.parametrize("ts", [True, "1762000000000", 1e300, 1_762_000_000])
def test_ts_must_be_plausible_epoch_milliseconds(ts: Any) -> None:
    reason = one_dead_letter(run(LHV, {"ts": ts, "v": 1.0})).reason
    assert reason.startswith(("timestamp ts=", "timestamp before 2000"))


def test_the_future_tolerance_is_a_parameter() -> None:
    an_hour_ahead = {"t": "2026-11-01T09:00:06Z", "v": 1.0}
    assert run(LHV, an_hour_ahead).readings
    late = run(LHV, an_hour_ahead, future_tolerance=timedelta(minutes=5))
    assert one_dead_letter(late).reason.startswith("timestamp in the future")


def test_nan_and_infinity_go_to_the_writer_which_rules_by_status() -> None:
    # Python's json reads these literals; the writer dead-letters them under Good status and
    # keeps the status (without a value) under Bad/Uncertain.
    payload = (b'{"seq": 1, "values": [{"topic": "%s", "t": "%s", "v": NaN},'
               b' {"topic": "%s", "t": "%s", "v": -Infinity, "q": "uncertain"}]}'
               % (LHV.encode(), T0.encode(), GAS_02.encode(), T0.encode()))
    nan, minus_inf = run(BATCH, payload).readings
    assert nan.value is not None and math.isnan(nan.value) and nan.quality is Quality.GOOD
    assert minus_inf.value == -math.inf and minus_inf.quality is Quality.UNCERTAIN


# --- garbage -------------------------------------------------------------------------------

@pytest.mark.parametrize(("payload", "reason"), [
    (b"\xff\xfe{}", "payload is not UTF-8 text (byte 0xff at offset 0); publish UTF-8 JSON"),
    (b"{'v': 1}", "payload is not JSON: Expecting property name enclosed in double quotes: "
                  "line 1 column 2 (char 1)"),
    (b"", "payload is not JSON: Expecting value: line 1 column 1 (char 0)"),
    (b"[1, 2]", "payload is an array, not a JSON object"),
    (b"17.5", "payload is a number, not a JSON object"),
    (b"null", "payload is null, not a JSON object"),
    (b"[" * 100_000, "payload is not JSON: nested too deeply"),
])
def test_garbage_is_one_dead_letter_with_the_raw_bytes(payload: bytes, reason: str) -> None:
    letter = one_dead_letter(run(LHV, payload))
    assert letter.reason == reason
    assert letter.payload == payload[:64 * 1024]
    assert letter.origin == f"{PREFIX}:{LHV}"


def test_a_byte_order_mark_before_the_json_is_tolerated() -> None:
    assert one_reading(run(LHV, b'\xef\xbb\xbf{"t": "%s", "v": 1}' % T0.encode())).value == 1.0


def test_an_unknown_topic_is_a_dead_letter_saying_what_to_do() -> None:
    letter = one_dead_letter(run("smelter/v1/yulin-1/utilities/lhv-analyser/lhv",
                                 {"t": T0, "v": 1.0}))
    assert letter.reason == (
        "no binding for topic 'smelter/v1/yulin-1/utilities/lhv-analyser/lhv' on source "
        "'plant-mqtt'; add one to the plant model or check the topic template "
        "(smelter/v1/{site}/{area}/{equipment}/{signal})")


def test_an_oversize_payload_is_refused_unread_and_its_dead_letter_truncated() -> None:
    payload = b'{"t": "%s", "v": 1, "pad": "%s"}' % (T0.encode(), b"x" * 2_000)
    letter = one_dead_letter(run(LHV, payload, max_payload_bytes=1_000,
                                 dead_letter_payload_bytes=100))
    assert letter.reason == (f"payload of {len(payload):,} bytes is larger than the limit of "
                             "1,000 bytes")
    assert letter.payload == payload[:100]
    assert letter.detail == {"size": len(payload), "truncated": True}


def test_the_default_limits_are_one_mebibyte_and_64_kibibytes() -> None:
    payload = b'{"pad": "%s"}' % (b"x" * (1 << 20))
    letter = one_dead_letter(run(LHV, payload))
    assert letter.reason.startswith("payload of 1,048,587 bytes is larger than the limit of "
                                    "1,048,576 bytes")
    assert len(letter.payload) == 64 * 1024


@pytest.mark.parametrize(("payload", "reason"), [
    ({"seq": 1}, "batch without a 'values' list (got null)"),
    ({"seq": 1, "values": []}, "empty batch: no values to store"),
    ({"values": {"topic": LHV}}, "batch without a 'values' list (got an object)"),
])
def test_a_batch_without_values_is_one_dead_letter(payload: Any, reason: str) -> None:
    assert one_dead_letter(run(BATCH, payload)).reason == reason


@pytest.mark.parametrize(("item", "reason"), [
    (7, "batch item is a number, not a JSON object"),
    ({"t": T0, "v": 1.0}, "batch item without a 'topic' string (got null)"),
    ({"topic": ["x"], "t": T0, "v": 1.0}, "batch item without a 'topic' string (got an array)"),
])
def test_a_malformed_batch_item_is_a_dead_letter(item: Any, reason: str) -> None:
    letter = one_dead_letter(run(BATCH, {"values": [item]}))
    assert (letter.reason, letter.detail) == (reason, {"index": 0})


def test_a_batch_topic_must_name_one_source() -> None:
    letter = one_dead_letter(run(f"{BATCH}/extra", {"values": []}))
    assert letter.reason.startswith("batch topic must be smelter/v1/yulin-1/_batch/{source}")


# --- events that cannot be stored ----------------------------------------------------------

def _event(**changes: Any) -> dict[str, Any]:
    return {"seq": 3, "key": "k-1", "kind": "fesi_consumed", "time": T0,
            "asset": "reduction/furnace-01/retort-07", "quantity": 0.42, "unit": "t"} | changes


@pytest.mark.parametrize(("payload", "reason"), [
    (_event(kind="ingot_cast"), "event kind 'ingot_cast' in the payload does not match the "
                                "topic's kind 'fesi_consumed'"),
    (_event(quantity=-1.0), "material event rejected: quantity: Input should be greater than "
                            "or equal to 0"),
    (_event(quantity="0.42"), "material event rejected: quantity: Input should be a valid "
                              "number"),
    (_event(unit="kg"), "material event rejected: event: Value error, fesi_consumed is "
                        "recorded in 't', not 'kg'"),
    (_event(time="2026-11-01T08:00:00"), "material event rejected: time: Value error, time "
                                         "must carry a time zone"),
    (_event(shift="night"), "material event rejected: shift: Extra inputs are not permitted"),
    (_event(key=None, quantity=None), "material event rejected: key: Input should be a valid "
                                      "string; quantity: Input should be a valid number"),
    (_event(asset="reduction/furnace-09"), "event asset 'reduction/furnace-09' is not in the "
                                           "plant model"),
    (_event(time="2026-11-05T08:00:00Z"), "timestamp in the future"),
    (_event(origin="me"), "event field 'origin' is set by the collector, not by the sender"),
    (_event(key="k\x00"), "event key contains a NUL character"),
])
def test_an_invalid_event_is_a_dead_letter_naming_the_field(payload: Any, reason: str) -> None:
    letter = one_dead_letter(run(f"{EVENTS}/fesi_consumed", payload))
    assert letter.reason.startswith(reason)


def test_an_event_of_an_unknown_kind_is_a_dead_letter() -> None:
    letter = one_dead_letter(run(f"{EVENTS}/magic", _event(kind="magic")))
    assert letter.reason.startswith("material event rejected: kind: Input should be "
                                    "'crown_discharged'")


def test_an_event_topic_must_name_one_kind() -> None:
    letter = one_dead_letter(run(f"{EVENTS}/fesi_consumed/x", _event()))
    assert letter.reason.startswith("event topic must be smelter/v1/yulin-1/_events/{kind}")


# --- never raises --------------------------------------------------------------------------

def test_a_decoder_bug_dead_letters_the_message_and_never_raises(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    broken = TopicMap(demo_plant(), SOURCE)

    def explode(_: str) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(broken, "entry", explode)
    letter = one_dead_letter(run(LHV, {"t": T0, "v": 1.0}, broken))
    assert letter.reason == "decoder error: KeyError: 'boom'"
    assert letter.payload == json.dumps({"t": T0, "v": 1.0}).encode()
    assert "decoder error" in caplog.text
    # in a batch, only the item that hit the bug is lost
    out = run(BATCH, {"values": [{"topic": LHV, "t": T0, "v": 1.0}]}, broken)
    assert one_dead_letter(out).detail == {"index": 0}


def test_a_topic_that_postgresql_cannot_store_is_escaped_in_the_origin() -> None:
    letter = one_dead_letter(run("smelter/\x00/\ud800", b"{}"))
    assert letter.origin == "mqtt:plant-mqtt:smelter/\\x00/\\ud800"
    letter.origin.encode("utf-8")


# --- the generated corpus ------------------------------------------------------------------

CORPUS_MAP = VENDOR_MAP
_PLANT = vendor_plant()
_ONE_BINDING_TOPICS = sorted(b.address for b in _PLANT.bindings()
                             if b.source == SOURCE and b.address != SPARKPLUG_TOPIC
                             and "+" not in b.address)
_BOUND = {(b.asset, b.signal) for b in _PLANT.bindings() if b.source == SOURCE}
_ASSETS = sorted(CORPUS_MAP.assets)
_NOT_BEFORE = datetime(2000, 1, 1, tzinfo=UTC)

scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=8)
offsets = st.sampled_from(["Z", "+00:00", "+08:00", "-05:30", ""])
times = st.builds(
    lambda seconds, zone: (RECEIVED - timedelta(seconds=seconds)).replace(tzinfo=None)
    .isoformat(timespec="milliseconds") + zone,
    st.integers(-2 * 86_400, 3 * 86_400), offsets) | st.text(max_size=25)
bound_topics = st.sampled_from(_ONE_BINDING_TOPICS)
any_topics = (bound_topics | st.sampled_from([BATCH, f"{EVENTS}/ingot_cast", SPARKPLUG_TOPIC,
                                              "vendor/gw-7/p/ambient"])
              | st.text(max_size=40))


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """A valid object, or the same with a key dropped, replaced or added."""
    out = dict(base)
    how = draw(st.sampled_from(["keep", "keep", "drop", "replace", "add"]))
    if how == "drop" and out:
        out.pop(draw(st.sampled_from(sorted(out))))
    elif how == "replace" and out:
        out[draw(st.sampled_from(sorted(out)))] = draw(json_values)
    elif how == "add":
        out[draw(st.text(max_size=6))] = draw(json_values)
    return out


@st.composite
def value_items(draw: st.DrawFn) -> dict[str, Any]:
    item: dict[str, Any] = {"t": draw(times), "v": draw(st.floats(-1e6, 1e6) | st.none()),
                            "q": draw(st.sampled_from(["good", "uncertain", "bad"]))}
    if draw(st.booleans()):
        item["status"] = draw(st.sampled_from([0, 0x4000_0000, 0x808C_0000]))
    if draw(st.booleans()):
        item["ts"] = item.pop("t") if draw(st.booleans()) else T0_MS
    return draw(mutated(item))


@st.composite
def messages(draw: st.DrawFn) -> tuple[str, bytes]:
    shape = draw(st.sampled_from(["bytes", "json", "single", "batch", "event", "sparkplug",
                                  "vendor"]))
    if shape == "bytes":
        return draw(any_topics), draw(st.binary(max_size=80))
    if shape == "json":
        return draw(any_topics), json.dumps(draw(json_values)).encode()
    if shape == "single":
        doc: Any = draw(value_items())
        return draw(bound_topics | any_topics), json.dumps(doc).encode()
    if shape == "vendor":
        doc = draw(mutated({"ts": T0_MS, "data": {"totals": [1.0, draw(scalars)]}}))
        return VENDOR_TOPIC, json.dumps(doc).encode()
    if shape == "batch":
        items = draw(st.lists(value_items().map(lambda i: i | {"topic": None}), max_size=8))
        for item in items:
            item["topic"] = draw(bound_topics | st.text(max_size=10))
        doc = draw(mutated({"seq": draw(st.integers(0, 10**6)), "values": items}))
        return BATCH, json.dumps(doc).encode()
    if shape == "event":
        kind = draw(st.sampled_from(list(EventKind)))
        event = {"seq": 1, "key": draw(st.text(min_size=1, max_size=20)), "kind": kind.value,
                 "time": draw(times), "asset": draw(st.sampled_from(_ASSETS)),
                 "quantity": draw(st.floats(0, 100)), "unit": EVENT_UNITS[kind],
                 "destination": "backfill" if kind is EventKind.SLAG_SHIPPED else None}
        return f"{EVENTS}/{kind.value}", json.dumps(draw(mutated(event))).encode()
    metrics = [draw(mutated({"name": draw(st.sampled_from(["Analyser/LHV.PV", "Yard/Stock"])
                                           | st.text(max_size=8)),
                             "value": draw(scalars), "timestamp": T0_MS}))
               for _ in range(draw(st.integers(0, 5)))]
    doc = draw(mutated({"timestamp": T0_MS, "seq": 1, "metrics": metrics}))
    return SPARKPLUG_TOPIC, json.dumps(doc).encode()


def _check_accounting(message_topic: str, payload: bytes, out: Decoded) -> None:
    """Each value of the message is in exactly one Reading, MaterialEvent or DeadLetter."""
    assert out.readings or out.events or out.dead_letters, "a message vanished"
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):
        doc = None
    parts = [d for d in out.dead_letters if "index" in d.detail]
    whole = [d for d in out.dead_letters if "index" not in d.detail]
    if message_topic == BATCH and type(doc) is dict and type(doc.get("values")) is list \
            and doc["values"]:
        # every item topic here has one binding: one item, one reading or one dead letter
        assert not whole and not out.events
        assert len(out.readings) + len(parts) == len(doc["values"])
        assert len({d.detail["index"] for d in parts}) == len(parts)
    elif (message_topic == SPARKPLUG_TOPIC and type(doc) is dict
          and type(doc.get("metrics")) is list):
        if whole:  # the message as a whole (its timestamp) was refused: it says how many
            assert not out.readings and len(whole) == 1
            assert whole[0].detail["metrics"] == len(doc["metrics"])
        else:
            assert len(out.readings) + len(parts) == len(doc["metrics"])
    elif message_topic == SPARKPLUG_TOPIC:
        assert 1 <= len(out.readings) + len(out.dead_letters) <= 2  # two bindings there
    else:
        assert len(out.readings) + len(out.events) + len(out.dead_letters) == 1


def _check_well_formed(out: Decoded) -> None:
    for r in out.readings:
        assert (r.asset, r.signal) in _BOUND
        assert r.time.tzinfo is UTC and _NOT_BEFORE <= r.time <= RECEIVED + timedelta(days=1)
        assert r.value is None or type(r.value) is float
        assert r.value is not None or r.quality is not Quality.GOOD
        assert r.quality is Quality.from_status_code(r.status_code)
        assert r.origin.startswith(PREFIX)
    for e in out.events:
        assert e.asset in CORPUS_MAP.assets and e.time.tzinfo is UTC
    for d in out.dead_letters:
        assert d.reason and d.origin.startswith(PREFIX)
        assert isinstance(d.payload, bytes) and len(d.payload) <= 64 * 1024
        stored = d.origin + d.reason + json.dumps(d.detail)
        stored.encode("utf-8")  # no lone surrogates: PostgreSQL text takes it
        assert "\x00" not in stored


CORPUS_EXAMPLES = 250
MESSAGES_PER_EXAMPLE = 40


def test_a_generated_corpus_never_raises_and_loses_no_value() -> None:
    decoded = 0
    shapes: dict[str, int] = {"readings": 0, "events": 0, "dead_letters": 0}

    @settings(max_examples=CORPUS_EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.large_base_example])
    @given(st.lists(messages(), min_size=MESSAGES_PER_EXAMPLE,
                    max_size=MESSAGES_PER_EXAMPLE))
    def corpus(batch: list[tuple[str, bytes]]) -> None:
        nonlocal decoded
        for message_topic, payload in batch:
            out = decode(message_topic, payload, RECEIVED, CORPUS_MAP, PREFIX)
            _check_accounting(message_topic, payload, out)
            _check_well_formed(out)
            shapes["readings"] += len(out.readings)
            shapes["events"] += len(out.events)
            shapes["dead_letters"] += len(out.dead_letters)
        decoded += len(batch)

    corpus()
    assert decoded >= 10_000
    assert all(shapes.values()), shapes  # the corpus reached every outcome
