"""The baseline of bench/ingest_opcua.py: bare asyncua clients that only count (not run on its
own).

    .venv/bin/python bench/opcua_bare_client.py --plant FILE --mode bulk|handler

One process, one event loop, one asyncua `Client` per OPC UA source of the plant (as the
collector has), each with one subscription created with the same parameters the collector
asks for (publishing interval, keep-alive, lifetime, MaxNotificationsPerPublish 10,000) and
the same monitored-item requests (the plant's sampling interval and queue size, trigger
StatusValueTimestamp, 500 items per CreateMonitoredItems call, plus the CurrentTime
heartbeat item). Nothing is done with the values:

- `bulk`: a `Subscription` whose `publish_callback` adds len(MonitoredItems) to a counter — the
  least any asyncua client can do per publish response (transport, decoding and the session's
  publish loop only): the cost floor the collector is measured against;
- `handler`: asyncua's documented handler mode (`create_subscription(params, handler)`,
  `datachange_notification` does `count += 1`); asyncua runs every notification in a task.

stdout, one JSON object a line: {"ready": monitored items} once every subscription is made,
then every `--report-s` {"t": unix time, "n": notifications so far}. Ends at end of stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asyncua import Client, ua
from asyncua.common.subscription import Subscription

from collector.contracts import load_plant
from collector.contracts.plant import OpcUaSource
from collector.sources.opcua.addresses import resolve

HEARTBEAT_NODE = ua.NodeId(ua.ObjectIds.Server_ServerStatus_CurrentTime)
PER_CALL = 500  # the collector's default max_items_per_call
HEARTBEAT_TIMEOUT_S = 10.0  # the collector's default, for the same keep-alive count


class Counter:
    n = 0


class _NoHandler:
    pass


class CountingSubscription(Subscription):  # type: ignore[misc]  # asyncua is untyped here
    def __init__(self, session: object, params: ua.CreateSubscriptionParameters) -> None:
        super().__init__(session, params, _NoHandler())

    async def publish_callback(self, publish_result: ua.PublishResult) -> None:
        data = publish_result.NotificationMessage.NotificationData
        if data is None:
            return
        self.last_sequence_number = int(publish_result.NotificationMessage.SequenceNumber)
        for notification in data:
            if isinstance(notification, ua.DataChangeNotification):
                Counter.n += len(notification.MonitoredItems)


class CountingHandler:
    def datachange_notification(self, *_: Any) -> None:
        Counter.n += 1


def parameters(source: OpcUaSource) -> ua.CreateSubscriptionParameters:
    keepalive = max(1, int(HEARTBEAT_TIMEOUT_S * 1000 / 3 / source.publishing_interval_ms))
    return ua.CreateSubscriptionParameters(
        RequestedPublishingInterval=source.publishing_interval_ms,
        RequestedLifetimeCount=keepalive * 4, RequestedMaxKeepAliveCount=keepalive,
        MaxNotificationsPerPublish=10_000, PublishingEnabled=True, Priority=0)


def request(handle: int, node_id: ua.NodeId, sampling_ms: float, queue: int
            ) -> ua.MonitoredItemCreateRequest:
    flt = ua.DataChangeFilter(Trigger=ua.DataChangeTrigger.StatusValueTimestamp)
    params = ua.MonitoringParameters(ClientHandle=handle, SamplingInterval=sampling_ms,
                                     QueueSize=queue, DiscardOldest=True, Filter=flt)
    return ua.MonitoredItemCreateRequest(
        ItemToMonitor=ua.ReadValueId(NodeId=node_id, AttributeId=ua.AttributeIds.Value),
        MonitoringMode=ua.MonitoringMode.Reporting, RequestedParameters=params)


async def subscribe(client: Client, source: OpcUaSource, addresses: list[str], mode: str
                    ) -> int:
    await client.connect()
    namespaces = await client.get_namespace_array()
    if mode == "bulk":
        subscription = CountingSubscription(client.uaclient.session, parameters(source))
        await subscription.init()
    else:
        subscription = await client.create_subscription(parameters(source), CountingHandler())
    requests = [request(h, resolve(a, source.namespace, namespaces),
                        source.sampling_interval_ms, source.queue_size)
                for h, a in enumerate(addresses, start=1)]
    requests.append(request(len(addresses) + 1, HEARTBEAT_NODE, 1000.0, 1))
    made = 0
    for i in range(0, len(requests), PER_CALL):
        results = await subscription.create_monitored_items(requests[i:i + PER_CALL])
        made += sum(1 for r in results if not isinstance(r, ua.StatusCode))
    return made - 1


async def run(args: argparse.Namespace) -> None:
    plant = load_plant(args.plant)
    sources = [s for s in plant.sources if isinstance(s, OpcUaSource)]
    clients = [Client(s.endpoint, timeout=10.0, watchdog_intervall=HEARTBEAT_TIMEOUT_S / 2)
               for s in sources]
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def read_stdin() -> None:
        for _ in sys.stdin:
            pass
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=read_stdin, daemon=True).start()
    try:
        made = await asyncio.gather(*(
            subscribe(c, s, [b.address for b in plant.bindings() if b.source == s.id],
                      args.mode) for c, s in zip(clients, sources, strict=True)))
        print(json.dumps({"ready": sum(made)}), flush=True)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.report_s)
            print(json.dumps({"t": time.time(), "n": Counter.n}), flush=True)
    finally:
        for c in clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(c.disconnect(), 5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--plant", type=Path, required=True)
    parser.add_argument("--mode", choices=("bulk", "handler"), default="bulk")
    parser.add_argument("--report-s", type=float, default=1.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
