"""A hypothesis-generated corpus of garbage MQTT messages through a running collector: every
one becomes dead letters with a reason, nothing is stored from them, and the collector keeps
collecting."""

from __future__ import annotations

import json
import math
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.collect import CollectorApp
from collector.contracts import Plant
from simulators.mqtt_publisher import MqttPublisher
from tests.collector.conftest import collector_options, test_plant, wait_until
from tests.store.test_writer import rows

SOURCES = {"plant-mqtt"}
MESSAGES = 3_000

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)
not_a_number = st.text(max_size=10) | st.booleans() | st.lists(st.integers(), max_size=3) \
    | st.dictionaries(st.text(max_size=5), st.integers(), max_size=2)


def garbage(plant: Plant, site: str) -> st.SearchStrategy[tuple[str, bytes]]:
    """Messages no part of which can be stored."""
    topics = sorted({b.address for b in plant.bindings() if b.source == "plant-mqtt"})
    bound = st.sampled_from(topics)
    unknown = st.text(alphabet="abcxyz/_-0123456789", min_size=1, max_size=30).map(
        lambda t: f"smelter/v1/{site}/{t.strip('/') or 'x'}/junk")
    anywhere = bound | unknown | st.just(f"smelter/v1/{site}/_batch/plant-mqtt")

    def dump(value: object) -> bytes:
        return json.dumps(value, allow_nan=True).encode()

    return st.one_of(
        # not JSON at all, or not a JSON object
        st.tuples(anywhere, st.binary(max_size=64).filter(lambda b: not b.strip().startswith(
            b"{"))),
        st.tuples(anywhere, json_values.filter(lambda v: not isinstance(v, dict)).map(dump)),
        # well-formed values on topics nobody binds
        st.tuples(unknown, st.floats(0, 100).map(
            lambda v: dump({"t": "2026-11-01T00:00:00Z", "v": v, "q": "good"}))),
        # a value that is not a number, a naive timestamp, NaN under Good status
        st.tuples(bound, not_a_number.map(lambda v: dump({"t": "2026-11-01T00:00:00Z",
                                                          "v": v}))),
        st.tuples(bound, st.floats(0, 100).map(
            lambda v: dump({"t": "2026-11-01T00:00:00", "v": v}))),
        st.tuples(bound, st.just(dump({"t": "2026-11-01T00:00:00Z", "v": math.nan}))),
        # batches of garbage items, events that break the contract
        st.tuples(st.just(f"smelter/v1/{site}/_batch/plant-mqtt"),
                  st.lists(json_values, min_size=1, max_size=5).map(
                      lambda items: dump({"seq": 1, "values": [{"topic": "nope", "v": i}
                                                               for i in items]}))),
        st.tuples(st.just(f"smelter/v1/{site}/_events/ingot_cast"),
                  st.fixed_dictionaries({"key": st.text(max_size=3), "kind": st.just("ingot"),
                                         "quantity": json_values}).map(dump)),
    )


def corpus(plant: Plant, site: str, size: int) -> list[tuple[str, bytes]]:
    messages: list[tuple[str, bytes]] = []

    @settings(max_examples=size // 100, deadline=None, database=None)
    @given(st.lists(garbage(plant, site), min_size=100, max_size=100))
    def generate(batch: list[tuple[str, bytes]]) -> None:
        messages.extend(batch)

    generate()
    return messages[:size]


async def test_a_garbage_corpus_is_dead_lettered_and_the_collector_keeps_going(
        db_url: str, tmp_path: Path) -> None:
    plant, site = test_plant()
    messages = corpus(plant, site, MESSAGES)
    assert len(messages) == MESSAGES
    async with CollectorApp(plant, collector_options(db_url, tmp_path, SOURCES, {})) as app:
        source = app.sources[0]
        assert await wait_until(lambda: source.health.up, 30)
        publisher = MqttPublisher("mqtt://127.0.0.1:1883", f"garbage-{site}")
        publisher.connect()
        for topic, payload in messages:
            publisher.publish(topic, payload)
        publisher.publish(f"smelter/v1/{site}/utilities/lhv-analyser/gas_lhv_mj_per_nm3",
                          b'{"t": "2026-11-01T00:00:00Z", "v": 7.4, "q": "good"}')
        publisher.close()

        async def all_seen() -> bool:
            stored = await rows(db_url, "select count(*) from samples")
            return source.messages == MESSAGES + 1 and stored == [(1,)]

        assert await wait_until(all_seen, 90), (source.messages, source.health)
        assert source.health.up and app.pipeline.stats.db_up
    letters = await rows(db_url, "select origin, reason from dead_letters")
    # at least one per message, with the reason (identical messages give identical dead
    # letters, stored once: a redelivered message must not count twice)
    assert len(letters) >= len(set(messages))
    assert source.health.dead_letters >= MESSAGES
    assert all(origin.startswith("mqtt:") and reason for origin, reason in letters)
    reasons = {str(reason).split(":")[0].split("(")[0] for _, reason in letters}
    assert len(reasons) >= 8, reasons  # many different, explained ways to be wrong
