"""MQTT payloads → Readings, MaterialEvents and DeadLetters. Pure: no I/O, no clock, no broker.

`decode()` takes one received message and never raises: whatever cannot be stored becomes a
DeadLetter with the reason, the raw bytes and origin `f"{origin_prefix}:{topic}"`, so the
source acknowledges the message and keeps going. The formats are the documented ones
(simulators/README.md, "MQTT topics and payloads"); the collector does not import the
simulators.

Formats, chosen by topic, then by shape (first match wins):

1. batch, on `smelter/v1/{site}/_batch/{source}`:
   `{"seq": n, "values": [{"topic": …, "t": …, "v": …, "q": …, "status"?: …}, …]}`.
   Each item is a value object (below) mapped through the TopicMap by its own `topic`; one bad
   item is one dead letter (detail: `index`, `topic`; payload: the item as JSON), the rest of
   the batch is kept.
2. material event, on `smelter/v1/{site}/_events/{kind}`:
   `{"seq"?, "key", "kind", "time", "asset", "quantity", "unit", "destination"?, "ticket"?,
   "version"?}` → MaterialEvent, validated strictly (a quantity must be a JSON number, a time
   an ISO 8601 string with a zone). The topic's `{kind}` must equal the payload's. `asset` is
   the full asset path (`yulin-1/reduction/furnace-01/retort-07`) or the path below the site
   (`reduction/furnace-01/retort-07`, which gets `{site}/` in front); the result must be an
   asset of the plant model (site, area, equipment or sub-asset).
3. Sparkplug-B-style JSON, on any other topic, recognised by a `"metrics"` list:
   `{"timestamp": epoch ms, "seq": n, "metrics": [{"name": …, "timestamp"?: epoch ms,
   "value": …, "datatype"?: …}, …]}`. **Mapping rule: a metric feeds the binding whose address
   is the message topic and whose `json_path` equals the metric name** (compared as a plain
   string, never parsed as a path: Sparkplug names contain '/' and '.'). A metric's own
   timestamp wins over the payload's. Sparkplug has no quality field: a null value (or
   `"is_null": true`) is a Bad reading without a value, any number is Good. `datatype` /
   `dataType` is not needed (JSON carries the type) and is ignored. One dead letter per metric
   that cannot be read (no name, no binding, not a number).
4. value object, on a binding's topic: `{"t": ISO 8601 with zone | "ts": epoch ms,
   "v": number | null, "q": "good" | "uncertain" | "bad", "status"?: OPC UA code, "seq"?}`.
   A binding with a `json_path` reads its value there instead of from `v` (a vendor's JSON);
   timestamp and quality are still read from the top-level `t`/`ts` and `q`/`status`.
   Several bindings on one topic (different json_paths) give one reading each.

Value rules:
- value = `binding.convert(raw)` (scale/offset and unit into the catalogue unit).
- quality: an explicit `status` wins (the full code is kept; quality =
  `Quality.from_status_code`); else `q` (case-insensitive) → STATUS_GOOD / UNCERTAIN / BAD;
  neither → Good. A null (or absent `v`) value is accepted under Bad or Uncertain only.
- booleans, strings, arrays and objects as values → dead letter "value must be a number".
- JSON `NaN` / `Infinity` / `-Infinity` (Python's json accepts them, as do many gateways) are
  passed on as float nan/inf: the store writer dead-letters them under Good status and keeps
  the status without a value under Bad/Uncertain — one rule, in one place.
- an integer too large for a double → dead letter.

Timestamp rules:
- `t`: ISO 8601 with a zone (`Z` or `±hh:mm`), normalised to UTC; without a zone → dead letter
  "timestamp without a time zone". `ts` (and Sparkplug `timestamp`): epoch milliseconds, a
  JSON number. If both `t` and `ts` are given, `t` wins.
- no timestamp at all: the value is stamped with `received_at` (the broker gave it to us then;
  the best bound there is). Readings have no flag for this, so the count of substituted
  timestamps is `Decoded.stamped_on_receipt`, for the source's metrics and logs.
- more than `future_tolerance` (default 1 day) ahead of `received_at` → dead letter "timestamp
  in the future"; before `not_before` (default 2000-01-01 UTC) → dead letter "timestamp before
  …" (epoch seconds sent as milliseconds land in January 1970).

An empty batch or Sparkplug `metrics` list is one dead letter too: no message vanishes without
a trace.

Garbage → one dead letter per message: larger than `max_payload_bytes` (default 1 MiB), not
UTF-8, not JSON, JSON that is not an object, a topic no binding takes ("no binding for topic
…"). Dead-letter payloads are truncated to `dead_letter_payload_bytes` (default 64 KiB); the
detail then says `"truncated": true` and the original `"size"`.

Accounting (tested on a generated corpus): every value a message carries ends as exactly one
Reading, MaterialEvent or DeadLetter — per batch item, per Sparkplug metric, per event, per
binding of a value object; a message or item that cannot be taken apart is one dead letter.
An unexpected exception (a bug) discards the partial result and dead-letters the whole message
("decoder error: <type>: <message>"), so nothing is half-stored.

json_path syntax (tiny on purpose): keys separated by `.`, each key optionally followed by
zero-based list indexes in brackets — `temp`, `data.temp`, `values[2]`, `data.points[0].v`,
`m[1][0]`. A key is any run of characters other than `.`, `[` and `]`; the path starts with a
key (the payload is an object). No quoting, no negative indexes, no wildcards.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Final

from pydantic import ValidationError

from collector.contracts import (
    STATUS_BAD,
    STATUS_GOOD,
    STATUS_UNCERTAIN,
    DeadLetter,
    MaterialEvent,
    Quality,
    Reading,
)
from collector.sources.mqtt.topics import TopicBindings, TopicMap

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES: Final = 1 << 20
DEAD_LETTER_PAYLOAD_BYTES: Final = 64 << 10
FUTURE_TOLERANCE: Final = timedelta(days=1)
NOT_BEFORE: Final = datetime(2000, 1, 1, tzinfo=UTC)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MISSING: Final[Any] = object()  # a key that is absent, as opposed to JSON null
_QUALITY: Final = {
    "good": (STATUS_GOOD, Quality.GOOD),
    "uncertain": (STATUS_UNCERTAIN, Quality.UNCERTAIN),
    "bad": (STATUS_BAD, Quality.BAD),
}
_GOOD: Final = Quality.GOOD
_BAD_NO_VALUE: Final = (STATUS_BAD, Quality.BAD)


@dataclass(slots=True)
class Decoded:
    """What one message gave: readings, events and dead letters (each value in exactly one)."""

    readings: list[Reading] = field(default_factory=list)
    events: list[MaterialEvent] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    seq: int | None = None        # the message's `seq`, for the source to count loss/duplicates
    stamped_on_receipt: int = 0   # readings without a source timestamp, stamped `received_at`


# --- json_path ---------------------------------------------------------------------------------

class JsonPathError(ValueError):
    """A binding's json_path does not follow the syntax in the module docstring."""


_STEP = re.compile(r"([^.\[\]]+)((?:\[\d+\])*)")
_INDEX = re.compile(r"\[(\d+)\]")


@lru_cache(maxsize=4096)
def compile_path(path: str) -> tuple[str | int, ...]:
    """`data.points[0].v` → ('data', 'points', 0, 'v'); JsonPathError if malformed."""
    steps: list[str | int] = []
    for segment in path.split("."):
        match = _STEP.fullmatch(segment)
        if match is None:
            raise JsonPathError(
                f"json_path {path!r}: {segment!r} is not a key with optional [n] indexes "
                "(syntax: keys separated by '.', e.g. 'data.temp' or 'values[2]')")
        steps.append(match.group(1))
        steps.extend(int(i) for i in _INDEX.findall(match.group(2)))
    return tuple(steps)


def _walk(obj: dict[str, Any], path: str) -> Any:
    try:
        steps = compile_path(path)
    except JsonPathError as exc:
        raise _Rejected(f"binding error: {exc}") from None
    here: Any = obj
    for n, step in enumerate(steps):
        if isinstance(step, int):
            if type(here) is not list or step >= len(here):
                raise _Rejected(f"json_path {path!r}: no item [{step}] at {_at(steps[:n])}")
        elif type(here) is not dict or step not in here:
            raise _Rejected(f"json_path {path!r}: no key {step!r} at {_at(steps[:n])}")
        here = here[step]
    return here


def _at(steps: tuple[str | int, ...]) -> str:
    if not steps:
        return "the top level"
    text = "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in steps)
    return repr(text.lstrip("."))


# --- decoding ---------------------------------------------------------------------------------

class _Rejected(Exception):
    """One value (or item, or message) cannot be stored: the reason is for a person."""

    def __init__(self, reason: str, **detail: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def decode(message_topic: str, payload: bytes, received_at: datetime, topic_map: TopicMap,
           origin_prefix: str, *, max_payload_bytes: int = MAX_PAYLOAD_BYTES,
           dead_letter_payload_bytes: int = DEAD_LETTER_PAYLOAD_BYTES,
           future_tolerance: timedelta = FUTURE_TOLERANCE,
           not_before: datetime = NOT_BEFORE) -> Decoded:
    """Decode one MQTT message (see the module docstring). Never raises."""
    try:
        message = _Message(message_topic, payload, received_at, topic_map, origin_prefix,
                           dead_letter_payload_bytes, future_tolerance, not_before)
        message.decode(max_payload_bytes)
        return message.out
    except Exception as exc:  # a bug must not stop the source: the message is dead-lettered
        log.error("decoder error on topic %r", message_topic, exc_info=True)
        return _decoder_error(message_topic, payload, origin_prefix, dead_letter_payload_bytes,
                              exc)


def _decoder_error(topic: object, payload: object, origin_prefix: object, limit: int,
                   exc: Exception) -> Decoded:
    raw = bytes(payload) if isinstance(payload, bytes | bytearray | memoryview) else b""
    body, detail = _truncated(raw, limit)
    try:
        why = str(exc)
    except Exception:
        why = "<unprintable>"
    origin = _clean(f"{origin_prefix}:{topic}")
    return Decoded(dead_letters=[DeadLetter(origin, _clean(
        f"decoder error: {type(exc).__name__}: {why[:500]}"), body, detail)])


class _Message:
    """One message being decoded: its context and what it gave so far."""

    __slots__ = ("horizon", "limit", "map", "not_before", "origin", "out", "payload",
                 "received_at", "times", "tolerance", "topic")

    def __init__(self, topic: str, payload: bytes, received_at: datetime, topic_map: TopicMap,
                 origin_prefix: str, limit: int, tolerance: timedelta,
                 not_before: datetime) -> None:
        self.topic = topic
        self.payload = bytes(payload)
        self.map = topic_map
        # Naive datetimes are banned inside smeltwatch; a naive receive time is taken as UTC
        # rather than dead-lettering good data for the caller's mistake.
        self.received_at = (received_at.astimezone(UTC) if received_at.tzinfo is not None
                            else received_at.replace(tzinfo=UTC))
        self.horizon = self.received_at + tolerance
        self.tolerance = tolerance
        self.not_before = not_before
        self.origin = _clean(f"{origin_prefix}:{topic}")
        self.limit = limit
        self.out = Decoded()
        self.times: dict[str, datetime] = {}  # ISO string → UTC time: a batch repeats them

    # --- dead letters --------------------------------------------------------------------
    def dead(self, reason: str, *, part: bytes | None = None, **detail: Any) -> None:
        body, extra = _truncated(self.payload if part is None else part, self.limit)
        # Reasons and details quote the payload (a field name, a topic): make them storable.
        detail = {k: _clean(v) if type(v) is str else v for k, v in detail.items()}
        self.out.dead_letters.append(DeadLetter(self.origin, _clean(reason), body,
                                                detail | extra))

    def dead_item(self, reason: str, index: int, item: Any, **detail: Any) -> None:
        """A dead letter for one part of a message: the part (as JSON) is its payload."""
        try:
            part = json.dumps(item, ensure_ascii=True, separators=(",", ":")).encode()
        except (TypeError, ValueError, RecursionError):
            part = repr(item).encode("utf-8", "backslashreplace")
        self.dead(reason, part=part, index=index, **detail)

    # --- the message ---------------------------------------------------------------------
    def decode(self, max_payload_bytes: int) -> None:
        size = len(self.payload)
        if size > max_payload_bytes:
            self.dead(f"payload of {size:,} bytes is larger than the limit of "
                      f"{max_payload_bytes:,} bytes", size=size)
            return
        try:
            text = self.payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.dead(f"payload is not UTF-8 text (byte 0x{self.payload[exc.start]:02x} at "
                      f"offset {exc.start}); publish UTF-8 JSON")
            return
        if text.startswith("\ufeff"):  # a byte-order mark some Windows gateways put first
            text = text[1:]
        try:
            doc = json.loads(text)
        except RecursionError:
            self.dead("payload is not JSON: nested too deeply")
            return
        except ValueError as exc:
            self.dead(f"payload is not JSON: {_clean(str(exc))[:200]}")
            return
        if type(doc) is not dict:
            self.dead(f"payload is {_kind(doc)}, not a JSON object")
            return
        seq = doc.get("seq")
        if type(seq) is int:
            self.out.seq = seq

        topic, m = self.topic, self.map
        if topic.startswith(m.batch_prefix):
            self.batch(doc, topic[len(m.batch_prefix):])
        elif topic.startswith(m.events_prefix):
            self.event(doc, topic[len(m.events_prefix):])
        elif type(doc.get("metrics")) is list:
            self.sparkplug(doc)
        else:
            entry = m.entry(topic)
            if entry is None:
                self.dead(self.no_binding(topic))
                return
            try:
                self.value_object(doc, entry, None)
            except _Rejected as rejected:
                self.dead(rejected.reason, **rejected.detail)

    def no_binding(self, topic: str) -> str:
        return (f"no binding for topic {_show(topic, 200)} on source {self.map.source_id!r}; "
                f"add one to the plant model or check the topic template "
                f"({self.map.topic_template})")

    # --- value objects (single values and batch items) -----------------------------------
    def value_object(self, obj: dict[str, Any], entry: TopicBindings, index: int | None) -> None:
        """Readings from one value object; object-level problems raise _Rejected, a problem
        with one of several bindings dead-letters that binding's value only."""
        time = self.time_of(obj)
        status = obj.get("status", _MISSING)
        if status is not _MISSING and status is not None:
            if type(status) is not int or not 0 <= status <= 0xFFFF_FFFF:
                raise _Rejected(f"status {_show(status)} is not an OPC UA status code (an "
                                "integer 0…4294967295)")
            quality = Quality.from_status_code(status)
        else:
            q = obj.get("q")
            if q is None:
                status, quality = STATUS_GOOD, _GOOD
            else:
                found = _QUALITY.get(q) if type(q) is str else None
                if found is None:
                    found = _QUALITY.get(q.lower()) if type(q) is str else None
                    if found is None:
                        raise _Rejected(f"quality q={_show(q)} is not 'good', 'uncertain' or "
                                        "'bad'")
                status, quality = found
        readings, origin = self.out.readings, self.origin
        bindings = entry.bindings
        for binding in bindings:
            path = binding.json_path
            try:
                if path is None:
                    raw = obj.get("v", _MISSING)
                    if raw is _MISSING and quality is _GOOD:
                        raise _Rejected("no value: the payload has no 'v' (a value may be left "
                                        "out only with q 'bad' or 'uncertain')")
                else:
                    raw = _walk(obj, path)
                value = _number(raw, quality, binding.factor, binding.offset)
            except _Rejected as rejected:
                if len(bindings) == 1:
                    raise
                detail: dict[str, Any] = {"signal": binding.signal, "json_path": path}
                if index is None:
                    self.dead(rejected.reason, **detail)
                else:
                    self.dead_item(rejected.reason, index, obj, **detail)
                continue
            readings.append(Reading(binding.asset, binding.signal, value, time, quality,
                                    status, origin))

    def time_of(self, obj: dict[str, Any]) -> datetime:
        t = obj.get("t")
        if t is not None:
            if type(t) is not str:
                raise _Rejected(f"timestamp t={_show(t)} must be an ISO 8601 string; send "
                                "epoch milliseconds as 'ts'")
            found = self.times.get(t)
            if found is None:  # only plausible times are remembered
                found = self.iso(t)
                self.times[t] = found
            return found
        ts = obj.get("ts")
        if ts is not None:
            return self.epoch_ms(ts, "ts")
        self.out.stamped_on_receipt += 1
        return self.received_at

    def iso(self, text: str) -> datetime:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise _Rejected(f"timestamp {_show(text)} is not ISO 8601 (e.g. "
                            "'2026-11-01T08:00:00.000Z')") from None
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise _Rejected(f"timestamp without a time zone: {_show(text)} (add 'Z' or an "
                            "offset such as '+08:00')")
        if parsed.tzinfo is not UTC:
            parsed = parsed.astimezone(UTC)
        return self.plausible(parsed)

    def epoch_ms(self, ts: Any, name: str) -> datetime:
        if type(ts) is int or (type(ts) is float and math.isfinite(ts)):
            try:
                return self.plausible(_EPOCH + timedelta(milliseconds=ts))
            except OverflowError:
                pass
        raise _Rejected(f"timestamp {name}={_show(ts)} is not epoch milliseconds (a finite "
                        "number within years 1970…9999)")

    def plausible(self, t: datetime) -> datetime:
        if t > self.horizon:
            raise self.future(t)
        if t < self.not_before:
            raise _Rejected(f"timestamp before {self.not_before.isoformat()}: {t.isoformat()} "
                            "(epoch seconds sent as milliseconds? a clock never set?)")
        return t

    def future(self, t: datetime) -> _Rejected:
        return _Rejected(f"timestamp in the future: {t.isoformat()} is more than "
                         f"{self.tolerance} ahead of its receipt at "
                         f"{self.received_at.isoformat()} (a device clock running ahead?)")

    # --- batch -----------------------------------------------------------------------------
    def batch(self, doc: dict[str, Any], publisher: str) -> None:
        if not publisher or "/" in publisher:
            self.dead(f"batch topic must be {self.map.batch_prefix}{{source}}, not "
                      f"{_show(self.topic, 200)}")
            return
        items = doc.get("values")
        if type(items) is not list:
            self.dead(f"batch without a 'values' list (got {_kind(items)})")
            return
        if not items:  # nothing to store, but a message never vanishes without a trace
            self.dead("empty batch: no values to store")
            return
        entry_of = self.map.entry
        for index, item in enumerate(items):
            try:
                if type(item) is not dict:
                    raise _Rejected(f"batch item is {_kind(item)}, not a JSON object")
                topic = item.get("topic")
                if type(topic) is not str:
                    raise _Rejected(f"batch item without a 'topic' string (got {_kind(topic)})")
                entry = entry_of(topic)
                if entry is None:
                    raise _Rejected(self.no_binding(topic), topic=_clean(topic[:500]))
                self.value_object(item, entry, index)
            except _Rejected as rejected:
                self.dead_item(rejected.reason, index, item, **rejected.detail)
            except Exception as exc:  # a bug: this item only, the rest of the batch is kept
                log.error("decoder error on item %d of %r", index, self.topic, exc_info=True)
                self.dead_item(_clean(f"decoder error: {type(exc).__name__}: {exc}"[:500]),
                               index, item)

    # --- Sparkplug-style metrics ---------------------------------------------------------
    def sparkplug(self, doc: dict[str, Any]) -> None:
        metrics: list[Any] = doc["metrics"]
        if not metrics:
            self.dead("empty 'metrics' list: no values to store", metrics=0)
            return
        entry = self.map.entry(self.topic)
        if entry is None:
            self.dead(self.no_binding(self.topic), metrics=len(metrics))
            return
        base: datetime | None = None
        if doc.get("timestamp") is not None:
            try:
                base = self.epoch_ms(doc["timestamp"], "timestamp")
            except _Rejected as rejected:
                self.dead(rejected.reason, metrics=len(metrics))
                return
        for index, metric in enumerate(metrics):
            try:
                self.metric(metric, entry, base)
            except _Rejected as rejected:
                self.dead_item(rejected.reason, index, metric, **rejected.detail)
            except Exception as exc:  # a bug: this metric only
                log.error("decoder error on metric %d of %r", index, self.topic, exc_info=True)
                self.dead_item(_clean(f"decoder error: {type(exc).__name__}: {exc}"[:500]),
                               index, metric)

    def metric(self, metric: Any, entry: TopicBindings, base: datetime | None) -> None:
        if type(metric) is not dict:
            raise _Rejected(f"metric is {_kind(metric)}, not a JSON object")
        name = metric.get("name")
        if type(name) is not str:
            raise _Rejected("metric without a 'name' (alias-only metrics need the birth "
                            "certificate, which this decoder does not keep)")
        binding = entry.by_json_path.get(name)
        if binding is None:
            raise _Rejected(f"no binding for metric {_show(name, 200)} on topic "
                            f"{_show(self.topic, 200)}; bind it with this topic as address "
                            "and the metric name as json_path", metric=_clean(name[:200]))
        ts = metric.get("timestamp")
        if ts is not None:
            time = self.epoch_ms(ts, "timestamp")
        elif base is not None:
            time = base
        else:
            self.out.stamped_on_receipt += 1
            time = self.received_at
        raw = None if metric.get("is_null") is True else metric.get("value")
        status, quality = (STATUS_GOOD, _GOOD) if raw is not None else _BAD_NO_VALUE
        value = _number(raw, quality, binding.factor, binding.offset)
        self.out.readings.append(Reading(binding.asset, binding.signal, value, time, quality,
                                         status, self.origin))

    # --- material events -------------------------------------------------------------------
    def event(self, doc: dict[str, Any], kind: str) -> None:
        if not kind or "/" in kind:
            self.dead(f"event topic must be {self.map.events_prefix}{{kind}}, not "
                      f"{_show(self.topic, 200)}")
            return
        sent = doc.get("kind")
        if type(sent) is str and sent != kind:
            self.dead(f"event kind {_show(sent)} in the payload does not match the topic's "
                      f"kind {_show(kind)}")
            return
        if "origin" in doc:
            self.dead("event field 'origin' is set by the collector, not by the sender")
            return
        data = {k: v for k, v in doc.items() if k != "seq"}
        asset = data.get("asset")
        if type(asset) is str:
            data["asset"] = self.asset_path(asset)
        data["origin"] = self.origin
        try:
            event = MaterialEvent.model_validate_json(json.dumps(data), strict=True)
        except ValidationError as exc:
            self.dead(f"material event rejected: {_problems(exc)}")
            return
        problem = _text_problem(event.key, "key") or _text_problem(event.ticket, "ticket")
        if problem:
            self.dead(problem)
            return
        if event.asset not in self.map.assets:
            self.dead(f"event asset {_show(asset, 200)} is not in the plant model (give an asset "
                      f"path such as '{self.map.site}/reduction/furnace-01/retort-07', or the "
                      "same below the site)")
            return
        try:
            time = self.plausible(event.time.astimezone(UTC))
        except _Rejected as rejected:
            self.dead(rejected.reason)
            return
        self.out.events.append(event.model_copy(update={"time": time}))

    def asset_path(self, asset: str) -> str:
        """Full asset path: kept if it is one of the plant's, else the site is put in front
        (a path below the site; an unknown path is then refused by the caller)."""
        return asset if asset in self.map.assets else f"{self.map.site}/{asset}"


def _number(raw: Any, quality: Quality, factor: float, offset: float) -> float | None:
    """The stored value of a raw JSON value: a float in the catalogue unit, or None."""
    kind = type(raw)
    if kind is float:
        number: float = raw
        return number * factor + offset  # nan/inf pass: the writer rules on them by status
    if kind is int:
        try:
            return float(raw) * factor + offset
        except OverflowError:
            raise _Rejected(f"value {_show(raw)} is too large for a double") from None
    if raw is None or raw is _MISSING:
        if quality is _GOOD:
            raise _Rejected("value is null with good quality (a missing value needs q 'bad' "
                            "or 'uncertain', or a Bad/Uncertain status)")
        return None
    raise _Rejected(f"value must be a number, not {_kind(raw)} {_show(raw)}")


def _problems(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in error["loc"])[:100] or "event"
        parts.append(f"{where}: {error['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _text_problem(text: str | None, name: str) -> str | None:
    # PostgreSQL text holds neither NUL nor lone surrogates (valid JSON can carry both).
    if text is None:
        return None
    if "\x00" in text:
        return f"event {name} contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return f"event {name} is not valid Unicode (a lone surrogate)"
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


def _show(value: Any, limit: int = 60) -> str:
    """A short, printable rendering of a payload value for a reason (repr escapes NUL and
    surrogates, so the text is storable)."""
    try:
        text = repr(value)
    except Exception:  # e.g. a number too long for repr
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clean(text: str) -> str:
    """Text that PostgreSQL can store: no NUL, no lone surrogates (a topic may carry either)."""
    if text.isascii() and "\x00" not in text:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _truncated(raw: bytes, limit: int) -> tuple[bytes, dict[str, Any]]:
    if len(raw) <= limit:
        return raw, {}
    return raw[:limit], {"truncated": True, "size": len(raw)}
