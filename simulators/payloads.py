"""The MQTT payloads the simulated meters, analysers and weighbridges send (JSON, UTF-8).

Documented in simulators/README.md; the collector decodes them from that description, not
from this module (the simulators are hardware).

- single value, on the binding's topic (`smelter/v1/{site}/{area}/{equipment}/{signal}`):
  {"t": "2026-11-01T08:00:00.000Z", "v": 1234.5, "q": "good", "seq": 17}
  `q` is good | uncertain | bad; a Bad value may carry "v": null and "status": <OPC UA code>.
- batch, on `smelter/v1/{site}/_batch/{source}`:
  {"seq": 18, "values": [{"topic": "<binding topic>", "t": …, "v": …, "q": …}, …]}
- material event, on `smelter/v1/{site}/_events/{kind}`:
  {"seq": 19, "key": "…", "kind": "ingot_cast", "time": …, "asset": "…", "quantity": 1.93,
   "unit": "t", "destination": null, "ticket": null}
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from collector.contracts import Quality
from simulators.model.feed import SimEvent


def iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def value_item(t: datetime, value: float | None, status: int) -> dict[str, Any]:
    item: dict[str, Any] = {"t": iso(t), "v": value,
                            "q": Quality.from_status_code(status).name.lower()}
    if status:
        item["status"] = status
    return item


def single(t: datetime, value: float | None, status: int, seq: int) -> bytes:
    return json.dumps(value_item(t, value, status) | {"seq": seq}).encode()


def batch(items: list[dict[str, Any]], seq: int) -> bytes:
    return json.dumps({"seq": seq, "values": items}, separators=(",", ":")).encode()


def event(e: SimEvent, time: datetime, seq: int) -> bytes:
    return json.dumps({"seq": seq, "key": e.key, "kind": e.kind.value, "time": iso(time),
                       "asset": e.asset, "quantity": e.quantity, "unit": e.unit,
                       "destination": e.destination, "ticket": e.ticket},
                      ensure_ascii=False).encode()
