"""`smeltwatch record` and `smeltwatch replay`."""

from __future__ import annotations

import asyncio
import json
import shlex
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import typer

from collector.contracts import PlantConfigError, load_plant
from collector.contracts.plant import MqttSource, OpcUaSource
from simulators.cli_options import MqttCaFile, MqttPassword, MqttUsername, mqtt_connection, pairs
from simulators.mqtt_publisher import PublishError
from simulators.recording import opcua_codec
from simulators.recording.player import ReplayOptions, replay
from simulators.recording.recorder import RecordOptions, record
from simulators.recording.store import Recording, RecordingError


def _until_signalled(main: object) -> None:
    """Run a coroutine function taking a stop event; Ctrl-C / SIGTERM set the event."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)  # type: ignore[operator]

    try:
        asyncio.run(runner())
    except (RecordingError, PublishError, OSError, ConnectionError, TimeoutError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def record_command(
    output: Annotated[Path, typer.Argument(help="the recording file to create (.swrec)")],
    plant: Annotated[Path | None, typer.Option(
        help="record every source of this plant: its broker's smelter/v1/<site>/# and each "
             "OPC UA endpoint")] = None,
    mqtt_url: Annotated[str | None, typer.Option(help="broker to record from")] = None,
    topic: Annotated[list[str] | None, typer.Option(
        help="MQTT topic filter (repeat; default smelter/v1/#, or the plant's site)")] = None,
    opcua: Annotated[list[str] | None, typer.Option(
        help="OPC UA endpoint to record (repeat)")] = None,
    opcua_base_port: Annotated[int | None, typer.Option(
        help="with --plant: its OPC UA servers are on consecutive ports from this one "
             "(as `sim run --opcua-base-port`)")] = None,
    wait: Annotated[float, typer.Option(
        help="seconds to wait for OPC UA servers that are not up yet")] = 30.0,
    duration: Annotated[float | None, typer.Option(help="stop after this many seconds")] = None,
    idle: Annotated[float | None, typer.Option(
        help="stop after this many seconds without a message")] = None,
    mqtt_username: MqttUsername = None,
    mqtt_password: MqttPassword = None,
    mqtt_ca_file: MqttCaFile = None,
) -> None:
    """Record MQTT messages and OPC UA DataValues into a recording file, until Ctrl-C."""
    topics, endpoints = list(topic or []), list(opcua or [])
    if plant is not None:
        try:
            model = load_plant(plant)
        except PlantConfigError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        topics = topics or [f"smelter/v1/{model.site.id}/#"]
        servers = [s for s in model.sources if isinstance(s, OpcUaSource)]
        for i, source in enumerate(servers):
            endpoint = source.endpoint
            if opcua_base_port is not None:
                endpoint = f"{endpoint.rsplit(':', 1)[0]}:{opcua_base_port + i}"
            endpoints.append(endpoint)
        brokers = [s.url for s in model.sources if isinstance(s, MqttSource)]
        mqtt_url = mqtt_url or (brokers[0] if brokers else None)
    if mqtt_url is None and not endpoints:
        typer.echo("error: nothing to record: give --plant, --mqtt-url or --opcua", err=True)
        raise typer.Exit(2)
    connection = None if mqtt_url is None else mqtt_connection(
        mqtt_url, mqtt_username, mqtt_password, mqtt_ca_file)
    options = RecordOptions(mqtt=connection, topics=tuple(topics or ["smelter/v1/#"]),
                            opcua_endpoints=tuple(endpoints), opcua_wait_s=wait,
                            duration_s=duration, idle_s=idle,
                            command_line=shlex.join(["smeltwatch", *sys.argv[1:]]))

    async def main(stop: asyncio.Event) -> None:
        stats = await record(output, options, stop)
        typer.echo(f"recorded {stats.mqtt_messages} MQTT messages and {stats.opcua_values} "
                   f"OPC UA values on {stats.channels} channels in {stats.wall_s:.1f} s "
                   f"into {output}")

    _until_signalled(main)


def replay_command(
    recording: Annotated[Path, typer.Argument(help="a recording made by `smeltwatch record`")],
    rate: Annotated[float, typer.Option(
        help="speed relative to the recording (2: twice as fast; 0: as fast as possible)")
    ] = 1.0,
    start_offset: Annotated[float, typer.Option(
        help="skip this many seconds of the recording's start")] = 0.0,
    loop: Annotated[bool, typer.Option(help="play again and again until Ctrl-C")] = False,
    topic: Annotated[list[str] | None, typer.Option(
        help="play only MQTT topics matching this filter (repeat)")] = None,
    node: Annotated[list[str] | None, typer.Option(
        help="play only OPC UA nodes matching this glob, e.g. '*furnace-01*' (repeat)")] = None,
    remap: Annotated[list[str] | None, typer.Option(
        help="OLD=NEW: topics (and the topics inside batches) starting OLD start NEW")] = None,
    timestamps: Annotated[str, typer.Option(
        help="original: as recorded; now: shifted so the first one is the replay's start")
    ] = "original",
    mqtt_url: Annotated[str | None, typer.Option(help="broker instead of the recorded")] = None,
    opcua_endpoint: Annotated[list[str] | None, typer.Option(
        help="RECORDED=SERVED: serve a recorded server's nodes at another endpoint")] = None,
    mqtt: Annotated[bool, typer.Option(help="play the MQTT messages")] = True,
    opcua: Annotated[bool, typer.Option(help="serve the OPC UA values")] = True,
    linger: Annotated[float, typer.Option(
        help="keep the OPC UA servers up this many seconds after the end")] = 0.0,
    info: Annotated[bool, typer.Option(help="describe the recording and exit")] = False,
    dump: Annotated[bool, typer.Option(
        help="print every message as a JSON line and exit")] = False,
    mqtt_username: MqttUsername = None,
    mqtt_password: MqttPassword = None,
    mqtt_ca_file: MqttCaFile = None,
) -> None:
    """Replay a recording into MQTT and/or OPC UA servers."""
    if timestamps not in ("original", "now"):
        raise typer.BadParameter("--timestamps is original or now")
    try:
        if info:
            _info(recording)
            return
        if dump:
            _dump(recording)
            return
    except RecordingError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    stamp: Literal["original", "now"] = "now" if timestamps == "now" else "original"
    if mqtt_url is not None or mqtt_username is not None or mqtt_ca_file is not None:
        mqtt_connection(mqtt_url or "mqtt://127.0.0.1:1883", mqtt_username, mqtt_password,
                        mqtt_ca_file)  # validate early
    options = ReplayOptions(
        rate=rate, start_offset_s=start_offset, loops=0 if loop else 1,
        topics=tuple(topic or ()), nodes=tuple(node or ()),
        remap=tuple(pairs(remap, "--remap").items()), timestamps=stamp, mqtt=mqtt,
        opcua=opcua, mqtt_url=mqtt_url,
        opcua_endpoints=pairs(opcua_endpoint, "--opcua-endpoint"), linger_s=linger,
        mqtt_username=mqtt_username, mqtt_password=mqtt_password, mqtt_ca_file=mqtt_ca_file)

    async def main(stop: asyncio.Event) -> None:
        stats = await replay(recording, options, stop)
        typer.echo(f"replayed {stats.mqtt_messages} MQTT messages and {stats.opcua_values} "
                   f"OPC UA values ({stats.loops} pass(es)) in {stats.wall_s:.1f} s")

    _until_signalled(main)


def _info(path: Path) -> None:
    with Recording(path) as rec:
        span = rec.span_ns()
        counts = rec.counts_by_channel()
        typer.echo(f"{path}: {rec.meta['format']} v{rec.meta['version']}, created "
                   f"{rec.meta['created']}")
        typer.echo(f"recorded by: {rec.meta.get('recorder', '')}")
        if span is None:
            typer.echo("no messages")
            return
        start = datetime.fromtimestamp(span[0] / 1e9, UTC)
        typer.echo(f"{rec.count()} messages from {start.isoformat()} over "
                   f"{(span[1] - span[0]) / 1e9:.3f} s")
        by_endpoint: dict[tuple[str, str], list[int]] = {}
        for channel in rec.channels.values():
            by_endpoint.setdefault((channel.protocol, channel.endpoint), []).append(channel.id)
        for (protocol, endpoint), ids in sorted(by_endpoint.items()):
            total = sum(counts.get(i, 0) for i in ids)
            typer.echo(f"  {protocol:5s} {endpoint}: {len(ids)} channels, {total} messages")
        typer.echo(f"content digest: {rec.content_digest()}")


def _dump(path: Path) -> None:
    with Recording(path) as rec:
        for m in rec.messages():
            entry: dict[str, object] = {"seq": m.seq, "protocol": m.channel.protocol,
                                        "endpoint": m.channel.endpoint,
                                        "channel": m.channel.name,
                                        "recv_time_ns": m.recv_time_ns}
            if m.channel.protocol == "mqtt":
                entry |= {"qos": m.qos, "retain": m.retain, "properties": m.properties,
                          "payload": m.data.decode("utf-8", errors="backslashreplace")}
            else:
                value = opcua_codec.decode(m.data)
                entry |= {"value": value.Value.Value if value.Value else None,
                          "variant": value.Value.VariantType.name if value.Value else None,
                          "status": value.StatusCode.value if value.StatusCode else 0,
                          "source_time": _iso(value.SourceTimestamp),
                          "server_time": _iso(value.ServerTimestamp)}
            typer.echo(json.dumps(entry, ensure_ascii=False, default=str))


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()
