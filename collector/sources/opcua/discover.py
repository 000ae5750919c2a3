"""`smeltwatch collect discover ENDPOINT`: browse an OPC UA server and write a binding skeleton
for the plant YAML.

Only the standard services every compliant server has are used: Browse (many nodes per
request, BrowseNext for continuation points) and Read (attributes and the EngineeringUnits /
EURange properties, batched), within the server's published operation limits
(MaxNodesPerBrowse, MaxNodesPerRead). The result is cached per endpoint
(`.smeltwatch/discover-cache/<endpoint-slug>.json`), so a second run does not browse again
(large browses are what break peers: Telegraf #14568, #16548).

The skeleton is a YAML mapping: one block per server folder that holds an equipment, each entry
a `BindingOverride` (address in the `nsu=<uri>;<id>` form, unit) keyed by `<sub-asset>/<signal>`
or `<signal>` when the browse name or unit makes the catalogue signal obvious, and by the
browse name with a `# TODO: signal?` comment otherwise.
"""

from __future__ import annotations

import json
import logging
import re
import typing
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from asyncua import Client, ua

from collector.contracts import CATALOGUE, Carrier, units
from collector.contracts.plant import Equipment
from collector.sources.opcua.pki import (
    SECURITY_SETTINGS,
    OpcUaSecurityError,
    Pki,
    choose_endpoint,
    describe_connect_error,
    secure_client,
)

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path(".smeltwatch/discover-cache")
DEFAULT_MAX_DEPTH = 10
DEFAULT_MAX_NODES = 5_000
DEFAULT_CACHE_MAX_AGE = timedelta(hours=1)
BROWSE_BATCH = 500      # nodes per Browse request, unless the server allows fewer
READ_BATCH = 1_000      # nodes per Read request, unless the server allows fewer
MAX_REFERENCES_PER_NODE = 1_000  # beyond that the server hands out continuation points
CACHE_VERSION = 1
UNECE_URI = "http://www.opcfoundation.org/UA/units/un/cefact"

_HAS_PROPERTY = ua.NodeId(ua.ObjectIds.HasProperty)
_OBJECT, _VARIABLE = ua.NodeClass.Object, ua.NodeClass.Variable
# UNECE Rec. 20 common codes of the units smeltwatch knows, for a server whose display name is
# not one of our spellings (m³ and Nm³ share codes, so those rely on the display name)
_UNECE_UNITS = {"CEL": "°C", "KEL": "K", "PAL": "Pa", "KPA": "kPa", "A97": "hPa",
                "MBR": "mbar", "KWH": "kWh", "MWH": "MWh", "KWT": "kW", "MAW": "MW",
                "TNE": "t", "KGM": "kg", "E18": "t/h", "HUR": "h", "MIN": "min", "SEC": "s",
                "P1": "%", "C62": "count"}
# OPC UA built-in types that are not numbers: the collector stores numbers only
_NOT_NUMERIC = {"String", "DateTime", "UtcTime", "Guid", "ByteString", "XmlElement", "NodeId",
                "ExpandedNodeId", "StatusCode", "QualifiedName", "LocalizedText", "Structure",
                "DataValue", "DiagnosticInfo", "LocaleId", "Image", "ImageBMP", "ImageGIF",
                "ImageJPG", "ImagePNG", "NumericRange", "DecimalString", "DurationString",
                "NormalizedString", "TimeString", "DateString"}
_ACCESS = ((1, "read"), (2, "write"), (4, "history read"), (8, "history write"),
           (16, "semantic change"), (32, "status write"), (64, "timestamp write"))


class DiscoverError(Exception):
    """A browse that could not be done; the message says why and what to try."""


@dataclass
class RequestStats:
    """What the browse asked of the server (not cached: a cached result made no requests)."""

    browse_requests: int = 0
    browse_next_requests: int = 0
    read_requests: int = 0
    largest_browse: int = 0
    largest_read: int = 0
    server_max_nodes_per_browse: int | None = None
    server_max_nodes_per_read: int | None = None


@dataclass(frozen=True)
class Variable:
    node_id: str                      # nsu=<uri>;<id> (i=… alone in namespace 0)
    browse_path: tuple[str, ...]      # browse names below the root (Objects)
    data_type: str
    value_rank: int | None = None
    description: str = ""
    unit: str | None = None           # EngineeringUnits display name
    unit_code: str | None = None      # UNECE common code
    eu_range: tuple[float, float] | None = None
    historizing: bool | None = None
    access_level: int | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Variable:
        r = data.get("eu_range")
        return cls(**{**data, "browse_path": tuple(data["browse_path"]),
                      "eu_range": (float(r[0]), float(r[1])) if r else None})


@dataclass
class BrowseResult:
    endpoint: str
    server_uri: str
    server_name: str
    root: str
    browsed_at: datetime
    max_depth: int
    max_nodes: int
    nodes: int = 0                    # objects and variables found (not properties)
    variables: list[Variable] = field(default_factory=list)
    cut_by_max_nodes: bool = False
    beyond_max_depth: int = 0         # nodes found below --max-depth and left out
    problems: list[str] = field(default_factory=list)
    stats: RequestStats = field(default_factory=RequestStats)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("stats")
        data["browsed_at"] = self.browsed_at.isoformat()
        data["version"] = CACHE_VERSION
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BrowseResult:
        data = dict(data)
        if data.pop("version", None) != CACHE_VERSION:
            raise ValueError("cache made by another version")
        data["browsed_at"] = datetime.fromisoformat(data["browsed_at"])
        data["variables"] = [Variable.from_json(v) for v in data["variables"]]
        return cls(**data)


@dataclass
class Discovery:
    result: BrowseResult
    from_cache: bool
    cache_file: Path
    cache_note: str = ""  # why the cache was not used, when it was not


# --- browsing ---------------------------------------------------------------------------------

@dataclass
class _Item:
    node_id: ua.NodeId
    path: tuple[str, ...]
    depth: int
    variable: int | None  # index into the found variables, for a Variable


class _Browser:
    def __init__(self, client: Client, stats: RequestStats) -> None:
        self.client, self.stats = client, stats
        self.browse_batch, self.read_batch = BROWSE_BATCH, READ_BATCH
        self.namespaces: list[str] = []

    async def limits(self) -> None:
        ids = [ua.ObjectIds.Server_NamespaceArray,
               ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerBrowse,
               ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead]
        ns, per_browse, per_read = await self.read([_rv(ua.NodeId(i)) for i in ids])
        self.namespaces = list(_value(ns) or [])
        self.stats.server_max_nodes_per_browse = _limit(per_browse)
        self.stats.server_max_nodes_per_read = _limit(per_read)
        per_browse_limit = self.stats.server_max_nodes_per_browse or BROWSE_BATCH
        per_read_limit = self.stats.server_max_nodes_per_read or READ_BATCH
        self.browse_batch = min(BROWSE_BATCH, per_browse_limit)
        self.read_batch = min(READ_BATCH, per_read_limit)

    async def read(self, items: Sequence[Any]) -> list[Any]:
        out: list[Any] = []
        for chunk in _chunks(items, self.read_batch):
            params = ua.ReadParameters()
            params.NodesToRead = list(chunk)
            params.TimestampsToReturn = ua.TimestampsToReturn.Neither
            self.stats.read_requests += 1
            self.stats.largest_read = max(self.stats.largest_read, len(chunk))
            out.extend(await self.client.uaclient.read(params))
        return out

    async def browse(self, nodes: Sequence[ua.NodeId]) -> list[list[Any] | str]:
        """The forward hierarchical references of each node (Objects and Variables), or why
        they could not be browsed. Follows continuation points with BrowseNext."""
        out: list[list[Any] | str] = []
        for chunk in _chunks(nodes, self.browse_batch):
            out.extend(await self._browse_batch(chunk))
        retry = [i for i, r in enumerate(out) if r == "BadNoContinuationPoints"]
        for i in retry:  # the server ran out of continuation points: one node at a time
            out[i] = (await self._browse_batch([nodes[i]]))[0]
        return out

    async def _browse_batch(self, nodes: Sequence[ua.NodeId]) -> list[list[Any] | str]:
        params = ua.BrowseParameters()
        params.View = ua.ViewDescription()
        params.RequestedMaxReferencesPerNode = MAX_REFERENCES_PER_NODE
        params.NodesToBrowse = [ua.BrowseDescription(
            NodeId=n, BrowseDirection=ua.BrowseDirection.Forward,
            ReferenceTypeId=ua.NodeId(ua.ObjectIds.HierarchicalReferences), IncludeSubtypes=True,
            NodeClassMask=int(_OBJECT) | int(_VARIABLE), ResultMask=int(ua.BrowseResultMask.All))
            for n in nodes]
        self.stats.browse_requests += 1
        self.stats.largest_browse = max(self.stats.largest_browse, len(nodes))
        results = await self.client.uaclient.browse(params)
        out: list[list[Any] | str] = []
        pending: dict[int, bytes] = {}
        for i, result in enumerate(results):
            if not result.StatusCode.is_good():
                out.append(result.StatusCode.name)
                continue
            out.append(list(result.References or []))
            if result.ContinuationPoint:
                pending[i] = result.ContinuationPoint
        while pending:
            chunk = list(pending.items())[:self.browse_batch]
            follow = ua.BrowseNextParameters()
            follow.ReleaseContinuationPoints = False
            follow.ContinuationPoints = [point for _, point in chunk]
            self.stats.browse_next_requests += 1
            for (i, _), result in zip(chunk, await self.client.uaclient.browse_next(follow),
                                      strict=True):
                del pending[i]
                refs = out[i]
                if not result.StatusCode.is_good():
                    out[i] = result.StatusCode.name
                elif isinstance(refs, list):
                    refs.extend(result.References or [])
                    if result.ContinuationPoint:
                        pending[i] = result.ContinuationPoint
        return out

    def local(self, node_id: Any) -> ua.NodeId | None:
        """A reference's ExpandedNodeId as a NodeId of this server, or None (another server)."""
        if getattr(node_id, "ServerIndex", 0):
            return None
        index = node_id.NamespaceIndex
        uri = getattr(node_id, "NamespaceUri", None)
        if uri:
            if uri not in self.namespaces:
                return None
            index = self.namespaces.index(uri)
        return ua.NodeId(node_id.Identifier, index, node_id.NodeIdType)

    def text(self, node_id: ua.NodeId) -> str:
        """NodeId in text form with the namespace URI (`nsu=<uri>;s=…`), which survives a
        server numbering its namespaces differently after a restart."""
        ident = ua.NodeId(node_id.Identifier, 0, node_id.NodeIdType).to_string()
        index = node_id.NamespaceIndex
        if index == 0:
            return str(ident)
        if index < len(self.namespaces):
            return f"nsu={self.namespaces[index]};{ident}"
        return f"ns={index};{ident}"

    def parse(self, text: str) -> ua.NodeId:
        try:
            if text.startswith("nsu="):
                uri, _, rest = text[4:].partition(";")
                if uri not in self.namespaces:
                    raise DiscoverError(f"--root {text}: the server has no namespace {uri!r}; "
                                        f"it has: {', '.join(self.namespaces)}")
                return ua.NodeId.from_string(f"ns={self.namespaces.index(uri)};{rest}")
            return ua.NodeId.from_string(text)
        except DiscoverError:
            raise
        except Exception as exc:  # asyncua raises several kinds for a malformed NodeId text
            raise DiscoverError(f"--root {text!r} is not a NodeId ({exc}); write it as "
                                "nsu=<namespace URI>;s=<id> or i=<number>") from None


async def browse_server(client: Client, *, endpoint: str, max_depth: int = DEFAULT_MAX_DEPTH,
                        max_nodes: int = DEFAULT_MAX_NODES, root: str | None = None,
                        server_uri: str = "", server_name: str = "") -> BrowseResult:
    """Browse a connected client's server below `root` (default: the Objects folder) for
    variables and their metadata. Namespace 0 (the Server object, types) is skipped."""
    stats = RequestStats()
    b = _Browser(client, stats)
    await b.limits()
    root_id = b.parse(root) if root else ua.NodeId(ua.ObjectIds.ObjectsFolder)
    result = BrowseResult(endpoint, server_uri, server_name, root or "Objects",
                          datetime.now(UTC), max_depth, max_nodes, stats=stats)
    found: list[tuple[ua.NodeId, tuple[str, ...]]] = []
    properties: dict[int, dict[str, ua.NodeId]] = {}
    seen = {root_id}
    frontier = [_Item(root_id, (), 0, None)]
    while frontier:
        following: list[_Item] = []
        for item, refs in zip(frontier, await b.browse([i.node_id for i in frontier]),
                              strict=True):
            if isinstance(refs, str):
                result.problems.append(f"could not browse {'/'.join(item.path) or 'the root'}: "
                                       f"{refs}")
                continue
            for ref in refs:
                node_id = b.local(ref.NodeId)
                if node_id is None:
                    continue
                if ref.ReferenceTypeId == _HAS_PROPERTY:
                    if item.variable is not None:
                        properties.setdefault(item.variable, {})[ref.BrowseName.Name] = node_id
                    continue
                if ref.NodeClass not in (_OBJECT, _VARIABLE) or node_id.NamespaceIndex == 0:
                    continue  # the Server object and the standard nodes are not the plant
                if node_id in seen:
                    continue
                seen.add(node_id)
                if item.depth + 1 > max_depth:
                    result.beyond_max_depth += 1
                    continue
                if result.nodes >= max_nodes:
                    result.cut_by_max_nodes = True
                    continue
                result.nodes += 1
                path = (*item.path, str(ref.BrowseName.Name))
                index = None
                if ref.NodeClass == _VARIABLE:
                    index = len(found)
                    found.append((node_id, path))
                following.append(_Item(node_id, path, item.depth + 1, index))
        if result.cut_by_max_nodes:  # still browse the variables found, for their properties
            following = [i for i in following if i.variable is not None]
        frontier = following
    result.variables = await _describe(b, found, properties)
    return result


async def _describe(b: _Browser, found: list[tuple[ua.NodeId, tuple[str, ...]]],
                    properties: dict[int, dict[str, ua.NodeId]]) -> list[Variable]:
    attributes = (ua.AttributeIds.DataType, ua.AttributeIds.ValueRank,
                  ua.AttributeIds.Historizing, ua.AttributeIds.AccessLevel,
                  ua.AttributeIds.Description)
    requests = [_rv(node_id, a) for node_id, _ in found for a in attributes]
    wanted: list[tuple[int, str]] = []
    for index, props in sorted(properties.items()):
        for name in ("EngineeringUnits", "EURange"):
            if name in props:
                requests.append(_rv(props[name]))
                wanted.append((index, name))
    values = await b.read(requests)
    n = len(attributes)
    per_variable = [values[i * n:(i + 1) * n] for i in range(len(found))]
    extra: dict[int, dict[str, Any]] = {}
    for (index, name), dv in zip(wanted, values[len(found) * n:], strict=True):
        extra.setdefault(index, {})[name] = _value(dv)
    type_names = await _type_names(b, [_value(v[0]) for v in per_variable])
    out = []
    for index, ((node_id, path), (dtype, rank, hist, access, desc)) in enumerate(
            zip(found, per_variable, strict=True)):
        eu, eu_range = extra.get(index, {}).get("EngineeringUnits"), extra.get(index, {}).get(
            "EURange")
        unit, code = _unit(eu)
        text = getattr(_value(desc), "Text", None)
        out.append(Variable(
            node_id=b.text(node_id), browse_path=path,
            data_type=type_names.get(_value(dtype), "unknown") if _value(dtype) else "unknown",
            value_rank=_int(_value(rank)), description=str(text or ""), unit=unit,
            unit_code=code, eu_range=_range(eu_range),
            historizing=None if _value(hist) is None else bool(_value(hist)),
            access_level=_int(_value(access))))
    return out


async def _type_names(b: _Browser, types: Iterable[Any]) -> dict[Any, str]:
    names: dict[Any, str] = {}
    custom = []
    for t in {t for t in types if isinstance(t, ua.NodeId)}:
        if t.NamespaceIndex == 0 and isinstance(t.Identifier, int):
            names[t] = ua.ObjectIdNames.get(t.Identifier, f"i={t.Identifier}")
        else:
            custom.append(t)
    for t, dv in zip(custom, await b.read([_rv(t, ua.AttributeIds.BrowseName) for t in custom]),
                     strict=True):
        name = _value(dv)
        names[t] = str(getattr(name, "Name", None) or b.text(t))
    return names


def _unit(eu: Any) -> tuple[str | None, str | None]:
    if eu is None or not hasattr(eu, "DisplayName"):
        return None, None
    display = getattr(eu.DisplayName, "Text", None) or None
    code = None
    unit_id = int(getattr(eu, "UnitId", -1) or -1)
    if unit_id > 0 and getattr(eu, "NamespaceUri", UNECE_URI) in (UNECE_URI, "", None):
        raw = unit_id.to_bytes(4, "big", signed=True).lstrip(b"\0")
        if raw.isascii():
            code = raw.decode("ascii")
    return display, code


def _range(value: Any) -> tuple[float, float] | None:
    if value is None or not hasattr(value, "Low"):
        return None
    return float(value.Low), float(value.High)


def _rv(node_id: ua.NodeId, attribute: Any = ua.AttributeIds.Value) -> Any:
    return ua.ReadValueId(NodeId=node_id, AttributeId=attribute)


def _value(dv: Any) -> Any:
    if dv is None or (dv.StatusCode is not None and not dv.StatusCode.is_good()):
        return None
    return dv.Value.Value if dv.Value is not None else None


def _limit(dv: Any) -> int | None:
    value = _int(_value(dv))
    return value if value else None  # 0: no limit published


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) else None


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    size = max(1, size)
    for i in range(0, len(items), size):
        yield items[i:i + size]


# --- connecting, caching ------------------------------------------------------------------------

def cache_file(cache_dir: Path, endpoint: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", endpoint.removeprefix("opc.tcp://")).strip("-")
    return cache_dir / f"{slug or 'endpoint'}.json"


def load_cache(path: Path, *, max_age: timedelta, max_depth: int, max_nodes: int,
               root: str | None, now: datetime | None = None) -> tuple[BrowseResult | None, str]:
    """The cached result if it is young enough and made with the same limits; else why not."""
    if not path.exists():
        return None, "no cache yet"
    try:
        result = BrowseResult.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"cache {path} unreadable ({exc}); browsing again"
    age = (now or datetime.now(UTC)) - result.browsed_at
    if age > max_age:
        return None, f"cache {path} is {_age(age)} old (older than --cache-max-age)"
    made_with = (result.max_depth, result.max_nodes, result.root)
    if made_with != (max_depth, max_nodes, root or "Objects"):
        return None, (f"cache {path} was made with --max-depth {result.max_depth} --max-nodes "
                      f"{result.max_nodes} from {result.root}; browsing again")
    return result, ""


def save_cache(path: Path, result: BrowseResult) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(result.to_json(), ensure_ascii=False, indent=1),
                         encoding="utf-8")
    temporary.replace(path)


async def discover(endpoint: str, *, security: str = "auto", pki: Pki | None = None,
                   username: str | None = None, password: str | None = None,
                   max_depth: int = DEFAULT_MAX_DEPTH, max_nodes: int = DEFAULT_MAX_NODES,
                   root: str | None = None, cache_dir: Path = DEFAULT_CACHE_DIR,
                   cache_max_age: timedelta = DEFAULT_CACHE_MAX_AGE, refresh: bool = False,
                   request_timeout_s: float = 10.0) -> Discovery:
    """Browse `endpoint` (or reuse a young enough cached browse of it)."""
    if not endpoint.startswith("opc.tcp://"):
        raise DiscoverError(f"{endpoint!r} is not an OPC UA endpoint (opc.tcp://host:port)")
    if max_depth < 1 or max_nodes < 1:
        raise DiscoverError("--max-depth and --max-nodes must be at least 1")
    if security not in SECURITY_SETTINGS:
        raise DiscoverError(f"--security {security!r}: choose from "
                            f"{', '.join(SECURITY_SETTINGS)}")
    path = cache_file(cache_dir, endpoint)
    note = "--refresh: cache ignored"
    if not refresh:
        cached, note = load_cache(path, max_age=cache_max_age, max_depth=max_depth,
                                  max_nodes=max_nodes, root=root)
        if cached is not None:
            return Discovery(cached, True, path)
    pki = pki or Pki()
    client = Client(endpoint, timeout=request_timeout_s)
    connected = False
    try:
        try:
            endpoints = await client.connect_and_get_server_endpoints()
            chosen = choose_endpoint(endpoints, security)
            await secure_client(client, chosen, pki, username, password)
            await client.connect()
            connected = True
        except (OpcUaSecurityError, DiscoverError):
            raise
        except Exception as exc:
            raise DiscoverError(_connect_problem(exc, endpoint, pki, request_timeout_s)) from None
        try:
            result = await browse_server(
                client, endpoint=endpoint, max_depth=max_depth, max_nodes=max_nodes, root=root,
                server_uri=str(chosen.Server.ApplicationUri or ""),
                server_name=str(getattr(chosen.Server.ApplicationName, "Text", "") or ""))
        except DiscoverError:
            raise
        except (TimeoutError, OSError, ua.UaError) as exc:
            raise DiscoverError(f"browsing {endpoint} failed: {_what(exc)}") from None
    finally:
        if connected:
            try:
                await client.disconnect()
            except Exception as exc:  # the server may be gone already
                log.debug("disconnecting from %s: %s", endpoint, exc)
    save_cache(path, result)
    return Discovery(result, False, path, note)


def _connect_problem(exc: Exception, endpoint: str, pki: Pki, timeout_s: float) -> str:
    explained = describe_connect_error(exc, endpoint, pki)
    if explained:
        return explained
    if isinstance(exc, TimeoutError):
        return f"no answer from the OPC UA server at {endpoint} within {timeout_s:g} s"
    if isinstance(exc, OSError):
        return f"cannot reach the OPC UA server at {endpoint}: {_what(exc)}"
    return f"the OPC UA server at {endpoint} refused the connection: {_what(exc)}"


def _what(exc: BaseException) -> str:
    if isinstance(exc, ua.UaStatusCodeError):
        return str(ua.StatusCode(exc.code).name)
    return str(exc) or type(exc).__name__


def _age(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


# --- suggestions --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Suggestion:
    signal: str | None
    reason: str
    candidates: tuple[str, ...] = ()
    certain: bool = False  # the browse name is the catalogue name


_SYNONYMS = {"temperature": "temp", "vac": "vacuum", "oxygen": "o2", "press": "pressure",
             "pres": "pressure", "preheat": "preheat", "cnt": "count", "counter": "count"}
_UNIT_WORDS = {"c", "pa", "kpa", "nm3", "h", "pct", "t", "kw", "kwh", "m3", "mj", "per",
               "total"}
_STOP = {"the", "of", "a", "an", "at", "in", "after", "since", "by", "to", "and"}


def _tokens(text: str) -> set[str]:
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    words = {w for w in re.split(r"[^a-z0-9]+", text.lower()) if w}
    return {_SYNONYMS.get(w, w) for w in words} - _STOP


def _signal_tokens(name: str) -> set[str]:
    entry = CATALOGUE[name]
    return ((set(name.split("_")) - _UNIT_WORDS) | _tokens(entry.en)) - _STOP


def _quantity(symbol: str) -> str | None:
    try:
        return units.lookup(symbol).quantity
    except units.UnitError:
        return None


def unit_symbol(variable: Variable) -> str | None:
    """The smeltwatch unit of a variable's EngineeringUnits, if it is one we know."""
    if variable.unit and _quantity(variable.unit):
        return units.lookup(variable.unit).symbol
    if variable.unit_code in _UNECE_UNITS:
        return _UNECE_UNITS[variable.unit_code]
    return None


def suggest_signal(variable: Variable) -> Suggestion:
    """The catalogue signal a variable obviously is, by its browse name or its unit and words."""
    name = variable.browse_path[-1] if variable.browse_path else ""
    symbol = unit_symbol(variable)
    quantity = _quantity(symbol) if symbol else None
    normalised = "_".join(sorted(_tokens(name), key=name.lower().find)) if name else ""
    for candidate in (name, name.lower(), normalised):
        if candidate in CATALOGUE:
            wanted = _quantity(CATALOGUE[candidate].unit)
            if quantity and quantity != wanted:
                return Suggestion(None, f"the browse name is the catalogue signal {candidate}, "
                                        f"but its unit {symbol} measures {quantity}, not "
                                        f"{wanted}", (candidate,))
            return Suggestion(candidate, "the browse name", certain=True)
    pool = [s for s in CATALOGUE if quantity is None or _quantity(CATALOGUE[s].unit) == quantity]
    words = _tokens(name) | _tokens(variable.description)
    scores = {s: len(words & _signal_tokens(s)) for s in pool}
    ranked = sorted(pool, key=lambda s: -scores[s])
    best = [s for s in ranked if scores[s] == scores[ranked[0]]] if ranked else []
    if len(best) == 1 and scores[best[0]] > 0:
        shared = sorted(words & _signal_tokens(best[0]))
        unit_part = f"unit {symbol}, " if symbol else ""
        return Suggestion(best[0], f"{unit_part}words {', '.join(shared)}", tuple(ranked[:6]))
    if quantity is not None and len(pool) == 1:
        return Suggestion(pool[0], f"the only catalogue signal measured in {symbol}", (pool[0],))
    in_unit = f" in {quantity.replace('_', ' ')}" if quantity else ""
    return Suggestion(None, f"catalogue signals{in_unit}: {', '.join(ranked[:6]) or 'none'}",
                      tuple(ranked[:6]))


def _sub_asset_signals() -> frozenset[str]:
    """Signals that live on a sub-asset (a retort, a zone, a burner pair) of some equipment kind:
    their binding key is `<sub-asset>/<signal>`."""
    found: set[str] = set()
    kinds = typing.get_args(typing.get_args(Equipment)[0])
    for kind in kinds:
        fields = {n: 1 for n, f in kind.model_fields.items() if f.annotation is int}
        for carrier in list(Carrier) if "carrier" in kind.model_fields else [None]:
            extra = {"carrier": carrier} if carrier is not None else {}
            try:
                item = kind.model_construct(**fields, **extra)
                found.update(n for sub, names in item.sub_assets() if sub for n in names)
            except Exception as exc:  # a new kind that needs more to construct: no harm
                log.debug("sub-assets of %s: %s", kind.__name__, exc)
    return frozenset(found)


SUB_ASSET_SIGNALS = _sub_asset_signals()


# --- the YAML skeleton --------------------------------------------------------------------------

@dataclass
class _Entry:
    key: str
    variable: Variable
    suggestion: Suggestion


def render_yaml(discovery: Discovery, now: datetime | None = None) -> str:
    """The binding skeleton: a header that says where and when it came from, then one block
    per equipment folder whose entries go under that equipment's `bindings:`."""
    result = discovery.result
    now = now or datetime.now(UTC)
    groups: dict[tuple[str, ...], list[_Entry]] = {}
    left_out: dict[tuple[str, ...], list[str]] = {}
    sub_folders: dict[tuple[str, ...], tuple[tuple[str, ...], str]] = {}
    planned = []
    for v in sorted(result.variables, key=lambda v: _natural(v.browse_path)):
        if v.data_type in _NOT_NUMERIC or (v.value_rank is not None and v.value_rank >= 0):
            why = f"an array of {v.data_type}" if v.data_type not in _NOT_NUMERIC else (
                f"not a number: {v.data_type}")
            left_out.setdefault(v.browse_path[:-1], []).append(
                f"{'/'.join(v.browse_path)} {v.node_id} ({why})")
            continue
        s = suggest_signal(v)
        planned.append((v, s))
        if s.signal in SUB_ASSET_SIGNALS and len(v.browse_path) >= 2:
            sub_folders[v.browse_path[:-1]] = (v.browse_path[:-2], v.browse_path[-2])
    # keys go to exact name matches first, then to guesses, then to the TODO entries
    for v, s in sorted(planned, key=lambda p: (not p[1].certain, p[1].signal is None)):
        folder = v.browse_path[:-1]
        group, prefix = sub_folders.get(folder, (folder, ""))
        if s.signal is not None:
            if s.signal not in SUB_ASSET_SIGNALS:
                group, prefix = folder, ""
            key = f"{prefix}/{s.signal}" if prefix else s.signal
        else:
            key = f"{prefix}/{v.browse_path[-1]}" if prefix else v.browse_path[-1]
        entries = groups.setdefault(group, [])
        taken = {e.key for e in entries}
        if key in taken and s.signal is not None:
            first = next(e for e in entries if e.key == key)
            s = Suggestion(None, f"{s.signal} is already bound to "
                                 f"{'/'.join(first.variable.browse_path)}", s.candidates)
            key = f"{prefix}/{v.browse_path[-1]}" if prefix else v.browse_path[-1]
        base, n = key, 2
        while key in taken:
            key, n = f"{base}~{n}", n + 1
        entries.append(_Entry(key, v, s))
    for entries in groups.values():
        entries.sort(key=lambda e: _natural(e.variable.browse_path))
    lines = _header(discovery, now, [e for es in groups.values() for e in es], left_out)
    for group in sorted(set(groups) | set(left_out), key=_natural):
        entries = groups.get(group, [])
        name = "/".join(group) or result.root
        lines.append("")
        lines.append(f"# {name}: {len(entries)} variable(s)")
        lines.append(f"{_key(name)}:" + ("" if entries else " {}"))
        for entry in entries:
            lines.extend(_entry_lines(entry))
        for text in left_out.get(group, []):
            lines.append(f"  # left out, {text}")
    return "\n".join(lines) + "\n"


def _header(discovery: Discovery, now: datetime, entries: list[_Entry],
            left_out: dict[tuple[str, ...], list[str]]) -> list[str]:
    r = discovery.result
    suggested = sum(1 for e in entries if e.suggestion.signal is not None)
    when = r.browsed_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    cached = (f" (from the cache {discovery.cache_file}, {_age(now - r.browsed_at)} old; "
              "--refresh browses again)" if discovery.from_cache else "")
    server = f"{r.server_name} ({r.server_uri})" if r.server_uri else r.server_name or "?"
    lines = [
        f"# smeltwatch binding skeleton: smeltwatch collect discover {r.endpoint}",
        f"# server: {server}",
        f"# browsed {when} from {r.root} with --max-depth {r.max_depth} --max-nodes "
        f"{r.max_nodes}{cached}",
        f"# {r.nodes} nodes, {len(r.variables)} variables: {suggested} with a suggested signal, "
        f"{len(entries) - suggested} marked TODO, "
        f"{sum(len(v) for v in left_out.values())} left out",
    ]
    if r.cut_by_max_nodes:
        lines.append(f"# CUT SHORT: the browse stopped at --max-nodes {r.max_nodes}; the server "
                     "has more nodes than listed here. Raise --max-nodes, or browse a folder "
                     "with --root nsu=<uri>;s=<folder id>.")
    if r.beyond_max_depth:
        lines.append(f"# CUT SHORT: {r.beyond_max_depth} node(s) lie deeper than --max-depth "
                     f"{r.max_depth} and are not listed; raise --max-depth to see them.")
    lines.extend(f"# problem: {p}" for p in r.problems)
    lines += [
        "#",
        "# One block per server folder that holds an equipment: paste the entries of a block",
        "# under that equipment's `bindings:` in the plant YAML (and set its `source:` to the",
        "# OPC UA source of this endpoint). Keys are `<sub-asset>/<signal>` or `<signal>`; a key",
        "# marked `# TODO: signal?` needs a catalogue signal name (or delete the entry).",
        "# `unit` is what the server reports in (converted into the catalogue unit). Optional",
        "# per entry: scale and offset (raw -> unit), sampling_interval_ms, queue_size, and",
        "# deadband (absolute, raw units) or deadband_pct (of the EURange).",
    ]
    return lines


def _entry_lines(entry: _Entry) -> list[str]:
    v, s = entry.variable, entry.suggestion
    facts = ["/".join(v.browse_path), v.data_type]
    if v.unit or v.unit_code:
        facts.append(f"{v.unit or '?'}" + (f" (UNECE {v.unit_code})" if v.unit_code else ""))
    else:
        facts.append("no EngineeringUnits")
    if v.eu_range:
        facts.append(f"EURange {v.eu_range[0]:g} to {v.eu_range[1]:g}")
    if v.historizing:
        facts.append("historizing")
    if v.access_level is not None:
        facts.append("access " + (", ".join(n for bit, n in _ACCESS if v.access_level & bit)
                                  or "none"))
    if v.value_rank in (-2, -3):
        facts.append("may be an array")
    out = [f"  {_key(entry.key)}:", f"    # {' · '.join(facts)}"]
    if v.description:
        out.append(f"    # {_one_line(v.description)}")
    if s.signal is not None:
        check = "" if s.certain else "? check it"
        out.append(f"    # signal: {s.signal}{check} ({s.reason})")
    else:
        out.append(f"    # TODO: signal? {s.reason}")
    out.append(f"    address: {_scalar(v.node_id)}")
    symbol = unit_symbol(v)
    target = CATALOGUE[s.signal].unit if s.signal else None
    if symbol and (target is None or _quantity(symbol) == _quantity(target)):
        out.append(f"    unit: {_scalar(symbol)}")
    elif symbol and target:
        out.append(f"    # unit: the server says {symbol}, which is not a unit of "
                   f"{s.signal} ({target}); check the binding")
    elif v.unit:
        allowed = units.same_quantity(_quantity(target) or "") if target else []
        hint = f"; give one of: {', '.join(allowed)}" if allowed else "; give a smeltwatch unit"
        out.append(f"    # unit: the server says {v.unit!r}, not a unit smeltwatch knows{hint}")
    elif target:
        out.append(f"    # unit: the server gives none; add `unit:` if it does not report in "
                   f"{target}")
    return out


def _scalar(text: str) -> str:
    """A YAML scalar for `text`: plain when it reads back unchanged, else double-quoted."""
    try:
        if yaml.safe_load(f"k: {text}") == {"k": text} and text.strip() == text:
            return text
    except yaml.YAMLError:
        pass
    return json.dumps(text, ensure_ascii=False)


def _key(text: str) -> str:
    try:
        if yaml.safe_load(f"{text}: 1") == {text: 1} and text.strip() == text:
            return text
    except yaml.YAMLError:
        pass
    return json.dumps(text, ensure_ascii=False)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _natural(path: Sequence[str]) -> tuple[tuple[tuple[int, str], ...], ...]:
    """retort-2 before retort-10."""
    return tuple(tuple((int(p), "") if p.isdigit() else (-1, p)
                       for p in re.split(r"(\d+)", part)) for part in path)
