"""TopicMap: which binding a received topic feeds, precedence, and the subscriptions."""

from __future__ import annotations

import pytest

from collector.contracts import Plant, parse_plant
from collector.sources.mqtt.topics import (
    TopicMap,
    TopicMapError,
    check_filter,
    covers,
    matches,
    minimal_filters,
)
from tests.sources.mqtt import (
    DEMO_YAML,
    SOURCE,
    SPARKPLUG_TOPIC,
    demo_plant,
    topic,
    vendor_plant,
)


def plant_with(weather: str, water: str) -> Plant:
    """The demo plant where the weather station (ambient_temp_c) and the water meter
    (water_m3_total) are read from these addresses."""
    text = DEMO_YAML.read_text(encoding="utf-8")
    text = text.replace(
        "{id: weather, kind: weather_station, source: plant-mqtt}",
        f"{{id: weather, kind: weather_station, source: plant-mqtt, bindings: "
        f"{{ambient_temp_c: {{address: '{weather}'}}}}}}")
    text = text.replace(
        "{id: water-main, kind: energy_meter, carrier: water, scope: utilities, "
        "source: plant-mqtt}",
        "{id: water-main, kind: energy_meter, carrier: water, scope: utilities, "
        f"source: plant-mqtt, bindings: {{water_m3_total: {{address: '{water}'}}}}}}")
    return parse_plant(text)


def test_every_demo_meter_topic_feeds_its_own_signal() -> None:
    plant = demo_plant()
    topic_map = TopicMap(plant, SOURCE)
    mine = [b for b in plant.bindings() if b.source == SOURCE]
    assert len(mine) == len(topic_map) == 20
    for binding in mine:
        assert topic_map.lookup(binding.address) == (binding,)
    gas = topic_map.lookup(topic("gas-furnace-01", "gas_volume_nm3_total"))
    assert [(b.asset, b.signal) for b in gas] == [
        ("yulin-1/utilities/gas-furnace-01", "gas_volume_nm3_total")]


def test_topics_of_other_sources_and_strangers_feed_nothing() -> None:
    topic_map = TopicMap(demo_plant(), SOURCE)
    # an OPC UA-bound signal's template topic, a typo, and a prefix of a real topic
    assert topic_map.lookup(topic("furnace-01/retort-07", "vacuum_pa", "reduction")) == ()
    assert topic_map.lookup(topic("gas-furnace-01", "gas_volume_nm3")) == ()
    assert topic_map.lookup("smelter/v1/yulin-1/utilities/gas-furnace-01") == ()


def test_subscriptions_cover_the_whole_site_tree_with_one_filter() -> None:
    assert TopicMap(demo_plant(), SOURCE).subscriptions() == ["smelter/v1/yulin-1/#"]


def test_addresses_outside_the_site_tree_are_subscribed_once_each() -> None:
    filters = TopicMap(vendor_plant(), SOURCE).subscriptions()
    assert filters == ["smelter/v1/yulin-1/#", SPARKPLUG_TOPIC, "vendor/gw-7/+/ambient",
                       "vendor/meters/water-main"]


def test_a_wildcard_address_absorbs_the_exact_ones_it_covers_in_subscriptions() -> None:
    plant = plant_with("vendor/gw-7/#", "vendor/gw-7/meters/water")
    assert TopicMap(plant, SOURCE).subscriptions() == ["smelter/v1/yulin-1/#", "vendor/gw-7/#"]


def test_shared_subscription_group_prefixes_every_filter() -> None:
    topic_map = TopicMap(vendor_plant(), SOURCE, share_group="collectors")
    assert topic_map.subscriptions()[:2] == ["$share/collectors/smelter/v1/yulin-1/#",
                                             f"$share/collectors/{SPARKPLUG_TOPIC}"]


@pytest.mark.parametrize("group", ["", "a/b", "a+", "#"])
def test_a_shared_subscription_group_with_mqtt_separators_is_refused(group: str) -> None:
    with pytest.raises(TopicMapError, match="shared-subscription group"):
        TopicMap(demo_plant(), SOURCE, share_group=group)


def test_a_wildcard_binding_feeds_its_one_signal_from_every_matching_topic() -> None:
    topic_map = TopicMap(vendor_plant(), SOURCE)
    for gateway_port in ("port-1", "port-2"):
        (binding,) = topic_map.lookup(f"vendor/gw-7/{gateway_port}/ambient")
        assert (binding.asset, binding.signal) == ("yulin-1/utilities/weather", "ambient_temp_c")
    assert topic_map.lookup("vendor/gw-7/port-1/ambient/extra") == ()
    assert topic_map.lookup("vendor/gw-7/ambient") == ()


def test_an_exact_address_wins_over_a_wildcard_that_also_matches() -> None:
    plant = plant_with("vendor/gw-7/+/temp", "vendor/gw-7/meters/temp")
    topic_map = TopicMap(plant, SOURCE)
    (exact,) = topic_map.lookup("vendor/gw-7/meters/temp")
    assert exact.signal == "water_m3_total"
    (wild,) = topic_map.lookup("vendor/gw-7/other/temp")
    assert wild.signal == "ambient_temp_c"


def test_the_wildcard_with_more_literal_levels_wins() -> None:
    plant = plant_with("vendor/#", "vendor/gw-7/+/flow")
    topic_map = TopicMap(plant, SOURCE)
    assert topic_map.lookup("vendor/gw-7/meter-9/flow")[0].signal == "water_m3_total"
    assert topic_map.lookup("vendor/gw-7/meter-9/temp")[0].signal == "ambient_temp_c"
    # asked twice: the remembered answer is the same
    assert topic_map.lookup("vendor/gw-7/meter-9/flow")[0].signal == "water_m3_total"


def test_on_equal_literal_levels_plus_beats_hash() -> None:
    plant = plant_with("vendor/gw-7/#", "vendor/gw-7/+")
    topic_map = TopicMap(plant, SOURCE)
    assert topic_map.lookup("vendor/gw-7/x")[0].signal == "water_m3_total"
    assert topic_map.lookup("vendor/gw-7/x/y")[0].signal == "ambient_temp_c"


def test_on_a_full_tie_the_first_address_in_the_plant_model_wins() -> None:
    # water-main comes before weather in demo.yaml
    plant = plant_with("vendor/+/temp", "vendor/gw/+")
    assert TopicMap(plant, SOURCE).lookup("vendor/gw/temp")[0].signal == "water_m3_total"


def test_several_json_paths_on_one_topic_are_all_its_bindings() -> None:
    topic_map = TopicMap(vendor_plant(), SOURCE)
    entry = topic_map.entry(SPARKPLUG_TOPIC)
    assert entry is not None
    assert sorted(entry.by_json_path) == ["Analyser/LHV.PV", "Yard/Stock"]
    assert {b.signal for b in entry.bindings} == {"gas_lhv_mj_per_nm3", "slag_stock_t"}


def test_an_unknown_or_opcua_source_is_a_configuration_error() -> None:
    with pytest.raises(TopicMapError, match=r"no source 'nope'.*MQTT sources: plant-mqtt"):
        TopicMap(demo_plant(), "nope")
    with pytest.raises(TopicMapError, match="opcua, not mqtt"):
        TopicMap(demo_plant(), "plc-kiln")


@pytest.mark.parametrize("address", ["vendor/gw#", "vendor/#/x", "vendor/a+/x", ""])
def test_a_malformed_wildcard_address_is_refused(address: str) -> None:
    with pytest.raises(TopicMapError):
        check_filter(address)


def test_a_malformed_address_in_the_plant_model_fails_at_start() -> None:
    plant = plant_with("vendor/gw-7/temp#", "v/w")
    with pytest.raises(TopicMapError, match="'#' must be a whole level"):
        TopicMap(plant, SOURCE)


@pytest.mark.parametrize(("topic_filter", "name", "expected"), [
    ("a/+/c", "a/b/c", True),
    ("a/+/c", "a/b/d", False),
    ("a/+", "a/b/c", False),
    ("a/#", "a", True),          # '#' also matches the parent level
    ("a/#", "a/b/c", True),
    ("#", "a/b", True),
    ("+/+", "/x", True),         # an empty level is a level
    ("#", "$SYS/broker/load", False),
    ("+/broker/load", "$SYS/broker/load", False),
    ("$SYS/#", "$SYS/broker/load", True),
])
def test_topic_matching_follows_mqtt_5(topic_filter: str, name: str, expected: bool) -> None:
    assert matches(topic_filter, name) is expected


@pytest.mark.parametrize(("outer", "inner", "expected"), [
    ("a/#", "a/b/+", True),
    ("a/#", "a", True),
    ("a/+/c", "a/b/c", True),
    ("a/b/c", "a/+/c", False),
    ("a/+", "a/#", False),
    ("+/#", "$SYS/x", False),
])
def test_filter_covering(outer: str, inner: str, expected: bool) -> None:
    assert covers(outer, inner) is expected


def test_minimal_filters_drop_duplicates_and_covered_ones() -> None:
    assert minimal_filters(["a/b", "a/#", "a/b", "c/+", "c/d", "e"]) == ["a/#", "c/+", "e"]
