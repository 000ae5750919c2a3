"""Record and replay: a recording keeps everything, and replaying it reproduces the stream."""

from __future__ import annotations

import asyncio
from pathlib import Path

from asyncua import ua

from collector.contracts import Plant
from collector.security.mqtt import MqttConnection
from simulators.recording import (
    Message,
    Player,
    Recorder,
    Recording,
    RecordOptions,
    ReplayOptions,
    opcua_codec,
)
from simulators.runner import RunOptions, ScenarioRun
from simulators.scenario import Scenario
from tests.simulators.conftest import free_port, make_plant, short_scenario

BROKER = "mqtt://127.0.0.1:1883"
PLC = "plc-kiln"
Stream = list[tuple[str, bytes, int | None, bool | None]]


def recorder_options(site: str, endpoint: str | None) -> RecordOptions:
    return RecordOptions(mqtt=MqttConnection(BROKER), topics=(f"smelter/v1/{site}/#",),
                         opcua_endpoints=(endpoint,) if endpoint else (), idle_s=1.5)


async def record_scenario(plant: Plant, site: str, scenario: Scenario, path: Path,
                          speed: float) -> str:
    """Run the kiln PLC and the MQTT meters with a recorder attached; the PLC's endpoint."""
    port = free_port()
    run = ScenarioRun(plant, scenario, RunOptions(speed=speed, only={PLC, "plant-mqtt"},
                                                  opcua_ports={PLC: port}))
    endpoint = f"opc.tcp://127.0.0.1:{port}"
    await run.start()
    recorder = Recorder(path, recorder_options(site, endpoint))
    try:
        await recorder.start()
        recording = asyncio.create_task(recorder.run())
        await run.play()
        await recording
    finally:
        await recorder.close()
        await run.close()
    return endpoint


def streams(path: Path) -> dict[str, Stream]:
    """Per protocol, in recorded order: channel, data, QoS, retain."""
    out: dict[str, Stream] = {"mqtt": [], "opcua": []}
    with Recording(path) as recording:
        for m in recording.messages():
            out[m.channel.protocol].append((m.channel.name, m.data, m.qos, m.retain))
    return out


def booted(data: bytes) -> bool:
    """The replay device's own state before the first replayed value."""
    value = opcua_codec.decode(data)
    return (value.StatusCode.value == ua.StatusCodes.BadWaitingForInitialData
            and value.SourceTimestamp is None)


async def test_replay_at_the_recorded_rate_reproduces_the_stream(tmp_path: Path) -> None:
    plant, site = make_plant()
    scenario = short_scenario(hours=2)
    original = tmp_path / "original.swrec"
    endpoint = await record_scenario(plant, site, scenario, original, speed=3600)

    replay_port = free_port()
    replay_endpoint = f"opc.tcp://127.0.0.1:{replay_port}"
    player = Player(original, ReplayOptions(rate=1.0, opcua_endpoints={endpoint:
                                                                        replay_endpoint}))
    again = tmp_path / "replayed.swrec"
    await player.start()
    recorder = Recorder(again, recorder_options(site, replay_endpoint))
    try:
        await recorder.start()
        recording = asyncio.create_task(recorder.run())
        stats = await player.play()
        await recording
    finally:
        await recorder.close()
        await player.close()

    first, second = streams(original), streams(again)
    assert len(first["mqtt"]) > 120 and len(first["opcua"]) >= 6 * 120
    assert stats.mqtt_messages == len(first["mqtt"])
    assert stats.opcua_values == len(first["opcua"])
    assert second["mqtt"] == first["mqtt"]  # same topics, bytes, QoS, retain, same order
    assert [m for m in second["opcua"] if not booted(m[1])] == first["opcua"]
    with Recording(original) as a, Recording(again) as b:
        specs_a = {c.name: c.spec for c in a.channels.values() if c.protocol == "opcua"}
        specs_b = {c.name: c.spec for c in b.channels.values() if c.protocol == "opcua"}
        assert specs_a == specs_b and len(specs_a) == 6  # the same address space
        burning = specs_a["nsu=urn:smeltwatch:yulin-1;s=calcination/kiln-1."
                          "kiln_burning_zone_temp_c"]
        assert burning is not None and burning["unit"]["display_name"] == "°C"
        assert burning["browse_path"] == [site, "calcination", "kiln-1",
                                          "kiln_burning_zone_temp_c"]


async def test_same_seed_gives_the_same_feed_on_the_wire(tmp_path: Path) -> None:
    plant, site = make_plant()
    digests = []
    for run, seed in enumerate((7, 7, 8)):
        path = tmp_path / f"run{run}.swrec"
        await record_scenario(plant, site, short_scenario(hours=1, seed=seed), path, speed=0)
        with Recording(path) as recording:
            digests.append(recording.content_digest(_without_server_time))
    assert digests[0] == digests[1]
    assert digests[0] != digests[2]


def _without_server_time(m: Message) -> bytes:
    return opcua_codec.without_server_time(m.data) if m.channel.protocol == "opcua" else m.data
