"""The MQTT source through broker restarts, collector outages, several collectors on one feed,
and garbage: QoS 1 with a persistent session and acknowledgement after durability."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from collector.collect import CollectorApp
from simulators.runner import RunOptions, ScenarioRun
from tests.collector.conftest import (
    collector_options,
    expected_values,
    stored_counts,
    test_plant,
    wait_until,
)
from tests.conftest import REPO
from tests.mqtt_broker import MosquittoBroker
from tests.simulators.conftest import short_scenario
from tests.store.test_writer import rows

SOURCES = {"plant-mqtt"}
SHIPPED_CONFIG = (REPO / "scripts" / "mosquitto" / "smeltwatch.conf").read_text()


def broker() -> MosquittoBroker:
    """A private Mosquitto with the settings the project ships (queue limits, persistence)."""
    return MosquittoBroker(persistence=True, extra_config=SHIPPED_CONFIG)


async def test_a_broker_restart_loses_nothing(db_url: str, tmp_path: Path) -> None:
    plant, site = test_plant()
    scenario = short_scenario(hours=12)
    with broker() as mosquitto:
        run = ScenarioRun(plant, scenario, RunOptions(speed=3600, only=SOURCES,
                                                      mqtt_url=mosquitto.url, batched=False))
        options = collector_options(db_url, tmp_path, SOURCES, {"plant-mqtt": mosquitto.url})
        async with CollectorApp(plant, options) as app:
            source = app.sources[0]
            assert await wait_until(lambda: source.health.up, 30)
            await run.start()
            playing = asyncio.create_task(run.play())
            assert await wait_until(lambda: source.health.readings > 200, 30)
            await asyncio.to_thread(mosquitto.restart)
            await playing
            await run.close()
            want = expected_values(plant, scenario, SOURCES)

            async def all_stored() -> bool:
                return await stored_counts(db_url, site) == want

            assert await wait_until(all_stored, 60), "values were lost in the broker restart"
            assert source.health.reconnects >= 1
    events = await rows(db_url, "select count(distinct event_key) from events")
    assert events[0][0] > 0


async def test_a_collector_offline_gets_every_queued_message_when_it_returns(
        db_url: str, tmp_path: Path) -> None:
    """More messages than Mosquitto's default queue (1,000) arrive while the collector is
    down; the shipped broker settings keep them all for its persistent session."""
    plant, site = test_plant()
    scenario = short_scenario(hours=4)  # ≈ 25 values a simulated minute, one per message
    with broker() as mosquitto:
        options = collector_options(db_url, tmp_path, SOURCES, {"plant-mqtt": mosquitto.url})
        async with CollectorApp(plant, options) as app:  # the session begins
            assert await wait_until(lambda: app.sources[0].health.up, 30)
        run = ScenarioRun(plant, scenario, RunOptions(speed=0, only=SOURCES,
                                                      mqtt_url=mosquitto.url, batched=False))
        await run.start()
        stats = await run.play()
        await run.close()
        assert stats.mqtt_messages > 4 * 1_000
        options.pipeline.spool_dir = tmp_path / "spool-2"
        async with CollectorApp(plant, options):  # same client id: the session resumes
            want = expected_values(plant, scenario, SOURCES)

            async def all_stored() -> bool:
                return await stored_counts(db_url, site) == want

            assert await wait_until(all_stored, 90), "queued messages were dropped"


async def test_two_collectors_share_one_feed_without_loss_or_duplicates(
        db_url: str, tmp_path: Path) -> None:
    plant, site = test_plant()
    scenario = short_scenario(hours=3)
    group = f"g{uuid.uuid4().hex[:6]}"
    apps = []
    for name in ("a", "b"):
        options = collector_options(db_url, tmp_path / name, SOURCES, {})
        options.mqtt.share_group = group
        apps.append(CollectorApp(plant, options))
    for app in apps:
        await app.start()
    try:
        assert await wait_until(lambda: all(a.sources[0].health.up for a in apps), 30)
        run = ScenarioRun(plant, scenario, RunOptions(speed=0, only=SOURCES, batched=False))
        await run.start()
        await run.play()
        await run.close()
        want = expected_values(plant, scenario, SOURCES)

        async def all_stored() -> bool:
            return await stored_counts(db_url, site) == want

        assert await wait_until(all_stored, 60)
    finally:
        for app in apps:
            await app.stop()
    received = [app.sources[0].health.readings for app in apps]
    assert all(n > 0 for n in received)                 # the load was split
    assert sum(received) == sum(want.values())          # each value went to one of them
    assert sum(app.pipeline.stats.duplicates for app in apps) == 0
