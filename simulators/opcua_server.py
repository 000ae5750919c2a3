"""OPC UA side of the simulated plant: one asyncua server per "PLC" source of the plant model.

Each server exposes Objects/<site>/<area>/<equipment>[/<sub-asset>]/<signal> variables whose
NodeIds are the plant model's binding addresses in the source's namespace URI. Every variable
carries EngineeringUnits (EUInformation, UNECE codes) and EURange (the catalogue's physical
range), is historised (HistoryRead of raw values by source time), and is written with source
and server timestamps and a status code that can go Bad or Uncertain.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from asyncua import Node, Server, ua
from asyncua.server.user_managers import UserManager

from collector.contracts import CATALOGUE, Binding, Plant
from collector.contracts.plant import OpcUaSource
from simulators.clock import VirtualClock
from simulators.model.feed import Frame

log = logging.getLogger(__name__)

UNECE_URI = "http://www.opcfoundation.org/UA/units/un/cefact"
# catalogue unit → UNECE common code (Rec. 20)
UNECE_CODES = {"°C": "CEL", "K": "KEL", "Pa": "PAL", "kPa": "KPA", "Nm³/h": "MQH",
               "Nm³": "MTQ", "kWh": "KWH", "kW": "KWT", "MJ/Nm³": "", "t": "TNE",
               "t/h": "E18", "%": "P1", "h": "HUR", "m³": "MTQ", "count": "C62", "state": ""}
HISTORY_VALUES_PER_NODE = 20_000


def eu_information(unit: str) -> ua.EUInformation:
    code = UNECE_CODES.get(unit, "")
    unit_id = -1
    if code:
        unit_id = 0
        for ch in code:
            unit_id = (unit_id << 8) | ord(ch)
    return ua.EUInformation(NamespaceUri=UNECE_URI, UnitId=unit_id,
                            DisplayName=ua.LocalizedText(unit), Description=ua.LocalizedText(unit))


@dataclass(frozen=True)
class OpcUaSecurity:
    """None, or Basic256Sha256 Sign/SignAndEncrypt with the server's certificate; optional
    username/password. Certificates are made once (self-signed) and kept in `cert_dir`."""

    policies: tuple[str, ...] = ("none",)   # none | sign | sign_encrypt
    cert_dir: Path | None = None
    users: tuple[tuple[str, str], ...] = ()


class _PasswordUsers(UserManager):  # type: ignore[misc]  # asyncua is untyped here
    def __init__(self, users: dict[str, str]) -> None:
        self.users = users

    def get_user(self, iserver: object, username: str | None = None,
                 password: str | None = None, certificate: object = None) -> object:
        from asyncua.crypto.permission_rules import User, UserRole

        if username is None and not self.users:
            return User(role=UserRole.User)
        if username is not None and self.users.get(username) == password:
            return User(role=UserRole.User, name=username)
        return None


class PlcServer:
    """One simulated PLC. `await start()`, then `await apply(frame)` per frame."""

    def __init__(self, plant: Plant, source: OpcUaSource, clock: VirtualClock,
                 security: OpcUaSecurity | None = None, endpoint: str | None = None) -> None:
        self.plant, self.source, self.clock = plant, source, clock
        self.security = security or OpcUaSecurity()
        self.endpoint = endpoint or source.endpoint
        self.bindings = [b for b in plant.bindings() if b.source == source.id]
        self.server = Server(user_manager=_PasswordUsers(dict(self.security.users))
                             if self.security.users else None)
        self._nodes: dict[tuple[str, str], tuple[ua.NodeId, Binding]] = {}
        self.ns = 0
        self.writes = 0

    async def start(self) -> None:
        server = self.server
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name(f"smeltwatch simulated PLC {self.source.id}")
        await server.set_application_uri(f"urn:smeltwatch:sim:{self.source.id}")
        await self._configure_security()
        self.ns = await server.register_namespace(self.source.namespace)
        await self._build_address_space()
        await server.start()
        log.info("OPC UA PLC %s serving %d variables at %s", self.source.id, len(self._nodes),
                 self.endpoint)

    async def stop(self) -> None:
        await self.server.stop()

    async def _configure_security(self) -> None:
        policies = {"none": ua.SecurityPolicyType.NoSecurity,
                    "sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
                    "sign_encrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt}
        self.server.set_security_policy([policies[p] for p in self.security.policies])
        if set(self.security.policies) - {"none"}:
            from simulators.certificates import ensure_certificate

            cert_dir = self.security.cert_dir or Path(".smeltwatch/sim-certs")
            host = urlparse(self.endpoint).hostname or "127.0.0.1"
            cert, key = ensure_certificate(cert_dir, f"sim-{self.source.id}",
                                           f"urn:smeltwatch:sim:{self.source.id}", host)
            await self.server.load_certificate(str(cert))
            await self.server.load_private_key(str(key))

    async def _build_address_space(self) -> None:
        objects = self.server.nodes.objects
        folders: dict[str, Node] = {}
        site = await objects.add_folder(self.ns, self.plant.site.id)
        folders[self.plant.site.id] = site
        historised: list[Node] = []
        for b in self.bindings:
            parent = await self._folder(folders, b.asset)
            signal = CATALOGUE[b.signal]
            node_id = ua.NodeId(b.address, self.ns)
            initial = ua.DataValue(
                ua.Variant(0.0, ua.VariantType.Double),
                StatusCode=ua.StatusCode(ua.StatusCodes.BadWaitingForInitialData),
                SourceTimestamp=self.clock.start, ServerTimestamp=datetime.now(UTC))
            var = await parent.add_variable(node_id, ua.QualifiedName(b.signal, self.ns), 0.0,
                                            varianttype=ua.VariantType.Double)
            await self.server.write_attribute_value(node_id, initial)
            unit = signal.unit
            await var.add_property(0, "EngineeringUnits", eu_information(unit))
            low, high = signal.physical_range
            await var.add_property(0, "EURange", ua.Range(low, high))
            await var.write_attribute(ua.AttributeIds.Description, ua.DataValue(
                ua.Variant(ua.LocalizedText(f"{signal.en} ({unit})"))))
            self._nodes[(b.asset, b.signal)] = (node_id, b)
            historised.append(var)
        for var in historised:
            await self.server.historize_node_data_change(var, period=None,
                                                         count=HISTORY_VALUES_PER_NODE)

    async def _folder(self, folders: dict[str, Node], asset: str) -> Node:
        if asset in folders:
            return folders[asset]
        parent_path, _, name = asset.rpartition("/")
        parent = await self._folder(folders, parent_path)
        folder = await parent.add_object(ua.NodeId(asset, self.ns), ua.QualifiedName(name, self.ns))
        folders[asset] = folder
        return folder

    async def apply(self, frame: Frame) -> int:
        """Write the frame's values for this PLC's nodes; returns how many were written."""
        written = 0
        now = datetime.now(UTC)
        for v in frame.values:
            entry = self._nodes.get((v.asset, v.signal))
            if entry is None:
                continue
            node_id, binding = entry
            raw = None if v.value is None else (v.value - binding.offset) / binding.factor
            data = ua.DataValue(
                ua.Variant(raw if raw is not None else 0.0, ua.VariantType.Double),
                StatusCode=ua.StatusCode(v.status),
                SourceTimestamp=self.clock.at(v.offset_s), ServerTimestamp=now)
            await self.server.write_attribute_value(node_id, data)
            written += 1
        self.writes += written
        return written
