"""Which plant signal a received MQTT topic feeds, and what to subscribe to.

A `TopicMap` is built once from the plant model for one MQTT source. It maps a concrete topic
(what a message arrives on) to the bindings of that source whose address is that topic:

- **exact addresses** (the topic template, or an override's `address`) are looked up in a dict;
- **wildcard addresses** (an override's `address` containing MQTT `+` or `#`, e.g.
  `vendor/gw-7/+/temp`) feed their one (asset, signal) from every topic they match.

Precedence, when a topic fits more than one address: an exact address always wins over any
wildcard one. Among wildcard addresses the most specific wins: the one with more literal
(non-wildcard) levels; on a tie, one without `#` beats one with it; on a further tie, the first
in plant-model order. Only the winning address's bindings are used — a wildcard never adds
readings to a topic that a more specific address already claims.

A topic has several bindings when they share the address and differ in `json_path` (several
values in one vendor JSON object, or several Sparkplug metrics of one device).

Subscriptions: the site's whole tree `smelter/v1/{site}/#` (the template's topics, batches on
`_batch/{source}`, events on `_events/{kind}`, and anything mis-addressed below the site, which
then becomes a dead letter instead of passing unseen), plus each binding address outside that
tree, minus any filter another one already covers. With a shared-subscription group each
filter becomes `$share/{group}/{filter}`, so several collectors split one stream.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from collector.contracts import Binding, Plant
from collector.contracts.plant import MqttSource

log = logging.getLogger(__name__)

# The documented topic tree (simulators/README.md, "MQTT topics and payloads"): everything a
# site publishes lives below this prefix; batches and events use reserved `_` levels.
SITE_PREFIX: Final = "smelter/v1/{site}"
BATCH_LEVEL: Final = "_batch"
EVENTS_LEVEL: Final = "_events"

# Unknown topics (and wildcard matches) are remembered; a broker full of strangers' topics must
# not grow this without bound, so the memo is dropped when it gets this big.
_MEMO_LIMIT = 65_536


class TopicMapError(ValueError):
    """The plant model cannot be turned into a topic map (a configuration error, at start)."""


@dataclass(frozen=True, slots=True)
class TopicBindings:
    """The bindings one topic feeds: all of them, and those with a json_path by that path
    (a Sparkplug metric name is looked up there)."""

    address: str
    bindings: tuple[Binding, ...]
    by_json_path: MappingProxyType[str, Binding] = field(repr=False)

    @classmethod
    def of(cls, address: str, bindings: tuple[Binding, ...]) -> TopicBindings:
        paths = {b.json_path: b for b in bindings if b.json_path is not None}
        return cls(address, bindings, MappingProxyType(paths))


@dataclass(frozen=True, slots=True)
class _Wildcard:
    levels: tuple[str, ...]
    specificity: tuple[int, int, int]  # larger wins: literal levels, no '#', -plant order
    entry: TopicBindings


def is_filter(address: str) -> bool:
    """True if an address is an MQTT topic filter (contains `+` or `#`)."""
    return "+" in address or "#" in address


def check_filter(address: str) -> None:
    """Raise TopicMapError unless `address` is a valid MQTT topic or topic filter."""
    if not address:
        raise TopicMapError("an MQTT address may not be empty")
    if "\x00" in address:
        raise TopicMapError(f"MQTT address {address!r} contains a NUL character")
    levels = address.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise TopicMapError(f"MQTT address {address!r}: '#' must be a whole level and the "
                                "last one (e.g. 'vendor/gw-7/#')")
        if "+" in level and level != "+":
            raise TopicMapError(f"MQTT address {address!r}: '+' must be a whole level "
                                "(e.g. 'vendor/+/temp')")


def matches(topic_filter: str, topic: str) -> bool:
    """MQTT 5 §4.7: does `topic` match `topic_filter`?"""
    return _matches(tuple(topic_filter.split("/")), topic.split("/"))


def _matches(levels: tuple[str, ...], topic: list[str]) -> bool:
    # Topics starting with '$' (broker internals) are not matched by a leading wildcard.
    if topic[0].startswith("$") and levels[0] in ("+", "#"):
        return False
    for i, level in enumerate(levels):
        if level == "#":
            return True  # also matches the parent level itself: 'a/#' matches 'a'
        if i >= len(topic):
            return False
        if level != "+" and level != topic[i]:
            return False
    return len(levels) == len(topic)


def covers(outer: str, inner: str) -> bool:
    """True if every topic matching filter `inner` also matches filter `outer`."""
    a, b = outer.split("/"), inner.split("/")
    if b[0].startswith("$") and a[0] in ("+", "#"):
        return False
    for i, level in enumerate(a):
        if level == "#":
            return True
        if i >= len(b) or b[i] == "#":
            return False
        if level != "+" and level != b[i]:
            return False  # a literal never covers '+' nor another literal
    return len(a) == len(b)


def minimal_filters(filters: list[str]) -> list[str]:
    """The filters that no other one covers (duplicates kept once), sorted."""
    unique = sorted(set(filters))
    return [f for f in unique if not any(g != f and covers(g, f) for g in unique)]


class TopicMap:
    """Topic → bindings for one MQTT source of a plant (see the module docstring)."""

    def __init__(self, plant: Plant, source_id: str, *, share_group: str | None = None) -> None:
        try:
            source = plant.source(source_id)
        except KeyError:
            known = ", ".join(s.id for s in plant.sources if isinstance(s, MqttSource))
            raise TopicMapError(f"no source {source_id!r} in the plant model; MQTT sources: "
                                f"{known or 'none'}") from None
        if not isinstance(source, MqttSource):
            raise TopicMapError(f"source {source_id!r} is {source.protocol}, not mqtt")
        if share_group is not None and (not share_group or any(c in share_group
                                                               for c in "/+#\x00")):
            raise TopicMapError(f"shared-subscription group {share_group!r} must be non-empty "
                                "and contain no '/', '+' or '#'")
        self.source_id = source_id
        self.site = plant.site.id
        self.topic_template = source.topic_template
        self.share_group = share_group
        self.site_prefix = SITE_PREFIX.format(site=self.site)
        self.batch_prefix = f"{self.site_prefix}/{BATCH_LEVEL}/"
        self.events_prefix = f"{self.site_prefix}/{EVENTS_LEVEL}/"
        # Every asset path of the plant (site, areas, equipment, sub-assets): material events
        # must name one of them.
        assets = {self.site} | {f"{self.site}/{a.id}" for a in plant.areas} | set(plant.assets())
        self.assets: frozenset[str] = frozenset(assets)

        grouped: dict[str, list[Binding]] = {}
        for binding in plant.bindings():
            if binding.source == source_id:
                check_filter(binding.address)
                grouped.setdefault(binding.address, []).append(binding)
        self._exact: dict[str, TopicBindings] = {}
        self._wildcards: list[_Wildcard] = []
        for order, (address, bindings) in enumerate(grouped.items()):
            entry = TopicBindings.of(address, tuple(bindings))
            if is_filter(address):
                levels = tuple(address.split("/"))
                literal = sum(1 for level in levels if level not in ("+", "#"))
                self._wildcards.append(_Wildcard(levels, (literal, int("#" not in levels),
                                                          -order), entry))
            else:
                self._exact[address] = entry
        self._wildcards.sort(key=lambda w: w.specificity, reverse=True)
        self._memo: dict[str, TopicBindings | None] = {}
        log.debug("topic map for %s: %d exact topics, %d wildcard addresses", source_id,
                  len(self._exact), len(self._wildcards))

    def __len__(self) -> int:
        return len(self._exact) + len(self._wildcards)

    def entry(self, topic: str) -> TopicBindings | None:
        """The bindings `topic` feeds (exact address first, then the most specific wildcard),
        or None if no binding of this source takes it. The hot path: one dict lookup."""
        found = self._exact.get(topic)
        if found is not None or not self._wildcards:
            return found
        try:
            return self._memo[topic]
        except KeyError:
            pass
        levels = topic.split("/")
        found = next((w.entry for w in self._wildcards if _matches(w.levels, levels)), None)
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()
        self._memo[topic] = found
        return found

    def lookup(self, topic: str) -> tuple[Binding, ...]:
        """The bindings `topic` feeds; empty if none."""
        found = self.entry(topic)
        return found.bindings if found is not None else ()

    def subscriptions(self) -> list[str]:
        """The minimal set of topic filters that receives everything this source reads."""
        wanted = [f"{self.site_prefix}/#"]
        wanted += [b for b in self._exact] + ["/".join(w.levels) for w in self._wildcards]
        filters = minimal_filters(wanted)
        if self.share_group is None:
            return filters
        return [f"$share/{self.share_group}/{f}" for f in filters]
