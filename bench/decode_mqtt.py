"""How fast the MQTT decoder turns payloads into Readings, against bare `json.loads`.

    .venv/bin/python bench/decode_mqtt.py [--values 500000] [--rounds 5]

The demo plant with every signal moved onto its MQTT source (476 topics, as in
`sim_throughput.py`), values in the documented formats (simulators/README.md):

- batch: `--values` values in payloads of 500 items on `smelter/v1/{site}/_batch/plant-mqtt`,
  one timestamp per 500-value payload (a frame of the plant, as the simulator sends it), about
  1 % Bad items with `status` and a null value;
- single: the same values, one message per value on the binding's topic.

Baseline: bare `json.loads` of the same payloads in the same run — the decoder's floor, so the
ratio means something on any machine. Each figure is the best of `--rounds` passes (values/s).
Target (issue #4): batch decode ≥ 300k values/s.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.contracts import STATUS_BAD, parse_plant
from collector.sources.mqtt.decoders import decode
from collector.sources.mqtt.topics import TopicMap

REPO = Path(__file__).resolve().parent.parent
SOURCE = "plant-mqtt"
START = datetime(2026, 11, 1, tzinfo=UTC)


def payloads(topic_map_topics: list[str], values: int, per_batch: int
             ) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    """(batch messages, single-value messages) carrying the same `values` values."""
    batches: list[tuple[str, bytes]] = []
    singles: list[tuple[str, bytes]] = []
    items: list[dict[str, object]] = []
    seq = 0
    for n in range(values):
        topic = topic_map_topics[n % len(topic_map_topics)]
        t = (START + timedelta(seconds=60 * (n // per_batch))).isoformat(
            timespec="milliseconds").replace("+00:00", "Z")
        item: dict[str, object] = {"t": t, "v": round(1000.0 + (n % 977) * 0.37, 3),
                                   "q": "good"}
        if n % 97 == 0:
            item = {"t": t, "v": None, "q": "bad", "status": STATUS_BAD}
        seq += 1
        singles.append((topic, json.dumps(item | {"seq": seq}).encode()))
        items.append(item | {"topic": topic})
        if len(items) == per_batch:
            batches.append((f"smelter/v1/yulin-1/_batch/{SOURCE}",
                            json.dumps({"seq": seq, "values": items},
                                       separators=(",", ":")).encode()))
            items = []
    if items:
        batches.append((f"smelter/v1/yulin-1/_batch/{SOURCE}",
                        json.dumps({"seq": seq, "values": items}, separators=(",", ":")).encode()))
    return batches, singles


def best_rate(values: int, rounds: int, run: Callable[[], int]) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        got = run()
        elapsed = time.perf_counter() - started
        if got != values:
            raise SystemExit(f"expected {values} values, got {got}")
        best = min(best, elapsed)
    return values / best


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--values", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    text = (REPO / "plants" / "demo.yaml").read_text(encoding="utf-8")
    plant = parse_plant(re.sub(r"source: plc-[a-z0-9-]+", f"source: {SOURCE}", text))
    topic_map = TopicMap(plant, SOURCE)
    topics = [b.address for b in plant.bindings() if b.source == SOURCE]
    batches, singles = payloads(topics, args.values, 500)
    received = START + timedelta(days=30)
    origin = f"mqtt:{SOURCE}"

    def loads_batches() -> int:
        return sum(len(json.loads(p)["values"]) for _, p in batches)

    def loads_singles() -> int:
        return sum(1 for _, p in singles if json.loads(p))

    def decode_all(messages: list[tuple[str, bytes]]) -> Callable[[], int]:
        def run() -> int:
            n = 0
            for topic, payload in messages:
                out = decode(topic, payload, received, topic_map, origin)
                n += len(out.readings) + len(out.dead_letters)
                if out.dead_letters:
                    raise SystemExit(f"unexpected dead letter: {out.dead_letters[0].reason}")
            return n
        return run

    rows = [
        ("json.loads, 500-value batches (baseline)", best_rate(args.values, args.rounds,
                                                               loads_batches)),
        ("decode, 500-value batches", best_rate(args.values, args.rounds,
                                                decode_all(batches))),
        ("json.loads, single-value messages (baseline)", best_rate(args.values, args.rounds,
                                                                   loads_singles)),
        ("decode, single-value messages", best_rate(args.values, args.rounds,
                                                    decode_all(singles))),
    ]
    print(f"{args.values:,} values, {len(topics)} topics, best of {args.rounds}, "
          f"Python {sys.version.split()[0]}")
    print("| | values/s | vs json.loads |\n|---|---|---|")
    baselines = {"batches": rows[0][1], "single": rows[2][1]}
    for name, rate in rows:
        base = baselines["batches" if "batch" in name else "single"]
        print(f"| {name} | {rate:,.0f} | {rate / base:.2f} |")


if __name__ == "__main__":
    main()
