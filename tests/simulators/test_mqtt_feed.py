"""The MQTT side of the simulated plant, read by a real subscriber on the real Mosquitto."""

from __future__ import annotations

from simulators.model import PlantSim
from simulators.mqtt_publisher import MqttChaos
from simulators.runner import RunOptions, run_scenario
from tests.mqtt_clients import Subscriber
from tests.simulators.conftest import make_plant, short_scenario

BROKER = "mqtt://127.0.0.1:1883"


async def test_batched_feed_carries_every_meter_value_and_event() -> None:
    plant, site = make_plant()
    scenario = short_scenario(hours=9)
    on_mqtt = {(b.asset, b.signal) for b in plant.bindings() if b.source == "plant-mqtt"}
    expected_values = sum(1 for f in PlantSim(plant, scenario).frames() for v in f.values
                          if (v.asset, v.signal) in on_mqtt)
    sub = Subscriber(topic=f"smelter/v1/{site}/#")
    try:
        stats = await run_scenario(plant, scenario, RunOptions(speed=0, only={"plant-mqtt"}))
        sub.wait_for(stats.mqtt_messages)
    finally:
        sub.close()
    assert len(sub.messages) == stats.mqtt_messages
    batches = [p for t, p in sub.messages if t == f"smelter/v1/{site}/_batch/plant-mqtt"]
    values = [v for p in batches for v in p["values"]]
    assert len(values) == expected_values
    gas = [v for v in values
           if v["topic"] == f"smelter/v1/{site}/utilities/gas-furnace-01/gas_volume_nm3_total"]
    assert len(gas) == 9 * 60 and gas[0]["t"] == "2026-11-01T00:01:00.000Z"
    assert all(v["q"] == "good" for v in gas)
    assert [v["v"] for v in gas] == sorted(v["v"] for v in gas)  # a totaliser only grows
    kinds = {t.rsplit("/", 1)[1] for t, _ in sub.messages if "/_events/" in t}
    assert {"dolomite_consumed", "fesi_consumed", "crown_discharged", "ingot_cast"} <= kinds
    seqs = [p["seq"] for _, p in sub.messages]
    assert sorted(seqs) == list(range(1, len(seqs) + 1))  # nothing lost or duplicated


async def test_single_value_messages_on_the_documented_topics() -> None:
    plant, site = make_plant()
    sub = Subscriber(topic=f"smelter/v1/{site}/utilities/lhv-analyser/#")
    try:
        await run_scenario(plant, short_scenario(hours=1),
                           RunOptions(speed=0, only={"plant-mqtt"}, batched=False))
        sub.wait_for(60)
    finally:
        sub.close()
    assert len(sub.messages) == 60
    topic, payload = sub.messages[0]
    assert topic == f"smelter/v1/{site}/utilities/lhv-analyser/gas_lhv_mj_per_nm3"
    assert set(payload) == {"t", "v", "q", "seq"}
    assert 6.5 < payload["v"] < 8.5


async def test_chaos_duplicates_and_reorders_messages() -> None:
    plant, site = make_plant()
    sub = Subscriber(topic=f"smelter/v1/{site}/#")
    try:
        stats = await run_scenario(plant, short_scenario(hours=3), RunOptions(
            speed=0, only={"plant-mqtt"}, chaos=MqttChaos(duplicate_pct=20, reorder_pct=20)))
        sub.wait_for(stats.mqtt_messages + 10, timeout_s=5)
    finally:
        sub.close()
    seqs = [p["seq"] for _, p in sub.messages]
    assert len(seqs) > len(set(seqs))          # duplicates arrived
    assert seqs != sorted(seqs)                # and some out of order
    assert set(seqs) == set(range(1, max(seqs) + 1))  # but nothing is missing
