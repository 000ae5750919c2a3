"""Replay options on a hand-made recording: filters, remaps, now-shifted timestamps, start
offset, loops, and MQTT 5 properties and retain flags kept."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asyncua import Client, ua

from simulators.mqtt_publisher import MqttPublisher
from simulators.opcua import EngineeringUnit, VariableSpec
from simulators.recording import Player, ReplayOptions, opcua_codec, replay
from simulators.recording.store import RecordingWriter
from tests.mqtt_clients import LOCAL_BROKER, Subscriber
from tests.simulators.conftest import free_port

T0 = datetime(2026, 11, 1, tzinfo=UTC)
RECORDED_AT = 1_790_000_000_000_000_000  # ns since the epoch, when the recorder saw them
STEP_NS = 100_000_000                    # 0.1 s apart
NAMESPACE = "urn:smeltwatch:test"
SPEC = VariableSpec(NAMESPACE, "s=furnace-01.zone_temp_c", ("plant", "furnace-01", "zone_temp_c"),
                    "zone temperature (°C)",
                    EngineeringUnit("http://www.opcfoundation.org/UA/units/un/cefact", 4408652,
                                    "°C", "°C"),
                    (0.0, 1600.0))


def iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_recording(path: Path, site: str, recorded_endpoint: str) -> None:
    """Ten seconds of plant: per second an LHV value, a batch, an OPC UA zone temperature;
    one retained event with MQTT 5 properties."""
    writer = RecordingWriter(path, "hand-made")
    lhv = writer.channel("mqtt", LOCAL_BROKER, f"smelter/v1/{site}/utilities/lhv/gas_lhv")
    batch = writer.channel("mqtt", LOCAL_BROKER, f"smelter/v1/{site}/_batch/plant-mqtt")
    event = writer.channel("mqtt", LOCAL_BROKER, f"smelter/v1/{site}/_events/ingot_cast")
    zone = writer.channel("opcua", recorded_endpoint,
                          opcua_codec.channel_name(SPEC.namespace, SPEC.identifier),
                          opcua_codec.spec_to_json(SPEC))
    seq = 0
    for i in range(10):
        t = T0 + timedelta(seconds=i)
        recv = RECORDED_AT + i * STEP_NS
        for channel, data in (
            (lhv, json.dumps({"t": iso(t), "v": 7.5 + i / 10, "q": "good", "seq": i}).encode()),
            (batch, json.dumps({"seq": i, "values": [
                {"topic": f"smelter/v1/{site}/utilities/gas-kiln-1/gas_volume_nm3_total",
                 "t": iso(t), "v": 1000.0 + i, "q": "good"}]}).encode()),
            (zone, opcua_codec.encode(ua.DataValue(
                ua.Variant(1200.0 + i, ua.VariantType.Double), SourceTimestamp=t,
                ServerTimestamp=t + timedelta(milliseconds=5)))),
        ):
            seq += 1
            writer.append(seq, channel, recv + seq, data, qos=1 if channel != zone else None,
                          retain=False if channel != zone else None)
    seq += 1
    writer.append(seq, event, RECORDED_AT + 10 * STEP_NS, json.dumps(
        {"key": "cast-1", "time": iso(T0), "quantity": 1.93}).encode(), qos=1, retain=True,
        properties={"ContentType": "application/json",
                    "UserProperty": [["plant", site], ["line", "1"]]})
    writer.close()


async def test_filters_remaps_and_now_shifted_timestamps(tmp_path: Path) -> None:
    site = f"replay-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "hand.swrec"
    make_recording(path, site, "opc.tcp://10.0.0.7:4840")
    port = free_port()
    moved = f"smelter/v1/{site}-copy/"
    options = ReplayOptions(
        rate=0, topics=(f"smelter/v1/{site}/utilities/#", f"smelter/v1/{site}/_batch/+"),
        remap=((f"smelter/v1/{site}/", moved),), timestamps="now",
        opcua_endpoints={"opc.tcp://10.0.0.7:4840": f"opc.tcp://127.0.0.1:{port}"},
        linger_s=0.0)
    player = Player(path, options)
    with Subscriber(topic=f"{moved}#") as sub:
        await player.start()
        try:
            before = datetime.now(UTC)
            stats = await player.play()
            async with Client(f"opc.tcp://127.0.0.1:{port}", timeout=10) as client:
                ns = await client.get_namespace_index(NAMESPACE)
                zone = client.get_node(ua.NodeId("furnace-01.zone_temp_c", ns))
                history = await zone.read_raw_history(before - timedelta(minutes=1),
                                                      datetime.now(UTC) + timedelta(minutes=1))
                unit = await (await zone.get_child("0:EngineeringUnits")).read_value()
        finally:
            await player.close()
        assert sub.wait_for(20, timeout_s=10)
    assert stats.mqtt_messages == 20 and stats.opcua_values == 10
    topics = [r.topic for r in sub.received]
    assert set(topics) == {f"{moved}utilities/lhv/gas_lhv", f"{moved}_batch/plant-mqtt"}
    lhv = [r.json() for r in sub.received if r.topic.endswith("gas_lhv")]
    times = [datetime.fromisoformat(m["t"]) for m in lhv]
    assert before - timedelta(seconds=1) <= times[0] <= datetime.now(UTC)  # shifted to now
    assert [t - times[0] for t in times] == [timedelta(seconds=i) for i in range(10)]
    assert [m["v"] for m in lhv] == [7.5 + i / 10 for i in range(10)]  # values untouched
    inner = [r.json()["values"][0] for r in sub.received if "_batch" in r.topic]
    assert {v["topic"] for v in inner} == {f"{moved}utilities/gas-kiln-1/gas_volume_nm3_total"}
    assert datetime.fromisoformat(inner[0]["t"]) - times[0] < timedelta(seconds=1)
    # OPC UA: the same shift, the recorded unit
    assert [dv.Value.Value for dv in history] == [1200.0 + i for i in range(10)]
    assert [dv.SourceTimestamp - history[0].SourceTimestamp for dv in history] == [
        timedelta(seconds=i) for i in range(10)]
    assert abs(history[0].SourceTimestamp - times[0]) < timedelta(seconds=1)
    assert unit.DisplayName.Text == "°C"


async def test_start_offset_loops_and_mqtt5_properties(tmp_path: Path) -> None:
    site = f"replay-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "hand.swrec"
    make_recording(path, site, "opc.tcp://10.0.0.7:4840")
    with Subscriber(topic=f"smelter/v1/{site}/#") as sub:
        stats = await replay(path, ReplayOptions(rate=4, start_offset_s=0.55, loops=2,
                                                 opcua=False))
        assert sub.wait_for(2 * (2 * 4 + 1), timeout_s=10)
        # the retained event stays on the broker: clear it
        cleaner = MqttPublisher(LOCAL_BROKER, f"cleaner-{site}")
        cleaner.connect()
        cleaner.publish(f"smelter/v1/{site}/_events/ingot_cast", b"", retain=True)
        cleaner.close()
    assert stats.loops == 2 and stats.mqtt_messages == 18 and stats.opcua_values == 0
    lhv = [r.json()["v"] for r in sub.received if r.topic.endswith("gas_lhv")]
    assert lhv == [7.5 + i / 10 for i in (6, 7, 8, 9)] * 2  # from 0.55 s on, twice
    events = [r for r in sub.received if "_events" in r.topic and r.payload]
    assert len(events) == 2
    assert all(e.retain and e.qos == 1 for e in events)
    assert events[0].properties == {"ContentType": "application/json",
                                    "UserProperty": [["plant", site], ["line", "1"]]}
    assert json.loads(events[0].payload)["time"] == iso(T0)  # original timestamps
