"""The OPC UA side of the simulated plant, read by a real asyncua client."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from asyncua import Client, ua

from simulators.opcua import eu_information
from simulators.runner import RunOptions, ScenarioRun
from simulators.scenario import Fault
from tests.simulators.conftest import free_port, make_plant, short_scenario


class Changes:
    """Subscription handler: keeps every data change (never blocks the client loop)."""

    def __init__(self) -> None:
        self.values: list[ua.DataValue] = []

    def datachange_notification(self, node: object, val: object, data: object) -> None:
        self.values.append(data.monitored_item.Value)  # type: ignore[attr-defined]


async def test_browse_units_subscribe_bad_status_and_history() -> None:
    plant, site = make_plant()
    port = free_port()
    bad = Fault(kind="bad_quality", target="reduction/furnace-01/zone-2",
                at=timedelta(minutes=20), duration=timedelta(minutes=10))
    scenario = short_scenario(hours=1, faults=[bad])
    run = ScenarioRun(plant, scenario, RunOptions(
        speed=0, only={"plc-furnace-01"}, opcua_ports={"plc-furnace-01": port}))
    await run.start()
    try:
        async with Client(f"opc.tcp://127.0.0.1:{port}", timeout=10) as client:
            ns = await client.get_namespace_index("urn:smeltwatch:yulin-1")
            # browse: Objects / site / reduction / furnace-01 / retort-07 / vacuum_pa
            path = ["0:Objects", f"{ns}:{site}", f"{ns}:reduction", f"{ns}:furnace-01",
                    f"{ns}:retort-07", f"{ns}:vacuum_pa"]
            vacuum = await client.nodes.root.get_child(path)
            assert vacuum.nodeid == ua.NodeId("reduction/furnace-01/retort-07.vacuum_pa", ns)
            eu = await (await vacuum.get_child("0:EngineeringUnits")).read_value()
            assert eu.UnitId == eu_information("Pa").UnitId and eu.DisplayName.Text == "Pa"
            eu_range = await (await vacuum.get_child("0:EURange")).read_value()
            assert (eu_range.Low, eu_range.High) == (0.0, 120_000.0)
            retorts = [n for n in await (await client.nodes.root.get_child(path[:4]))
                       .get_children()]
            assert len(retorts) == 4 + 4 + 6 + 20  # 4 furnace signals, zones, pairs, retorts

            zone = await client.nodes.root.get_child(
                [*path[:4], f"{ns}:zone-2", f"{ns}:zone_temp_c"])
            before = await zone.read_data_value(raise_on_bad_status=False)
            assert before.StatusCode.value == ua.StatusCodes.BadWaitingForInitialData

            handler = Changes()
            subscription = await client.create_subscription(50, handler)
            await subscription.subscribe_data_change(zone, queuesize=1000)  # keep every change
            await run.play()
            await asyncio.sleep(1.0)
            await subscription.delete()

            got = [dv for dv in handler.values
                   if dv.SourceTimestamp and dv.SourceTimestamp > scenario.start]
            # One value a minute; the ten Bad minutes repeat one status and value, which the
            # default StatusValue trigger reports once (OPC UA Part 4, DataChangeFilter).
            statuses = [(dv.SourceTimestamp - scenario.start, dv.StatusCode.is_good())
                        for dv in got]
            assert [t for t, good in statuses if good] == [
                timedelta(minutes=m) for m in [*range(1, 20), *range(30, 61)]]
            assert [t for t, good in statuses if not good] == [timedelta(minutes=20)]
            assert got[19].StatusCode.value == ua.StatusCodes.BadSensorFailure
            assert all(1150 < dv.Value.Value < 1290 for dv in got if dv.StatusCode.is_good())
            assert all(dv.ServerTimestamp is not None for dv in got)

            # HistoryRead of the simulated hour (by source time)
            history = await zone.read_raw_history(scenario.start - timedelta(minutes=1),
                                                  scenario.start + timedelta(hours=1))
            # the server historises changes (the same trigger): the start (waiting for
            # initial data), every good minute, and the Bad period once, at its start
            assert history[0].StatusCode.value == ua.StatusCodes.BadWaitingForInitialData
            assert history[0].SourceTimestamp == scenario.start - timedelta(seconds=1)
            assert [dv.SourceTimestamp - scenario.start for dv in history[1:]] == [
                timedelta(minutes=m) for m in [*range(1, 21), *range(30, 61)]]
    finally:
        await run.close()
