"""Binding addresses into NodeIds, resolved against the server's namespace array at every
connection (a restarted server may number its namespaces differently)."""

from __future__ import annotations

from asyncua import ua

_NODE_ID_FORMS = ("i=", "s=", "g=", "b=")


class AddressError(ValueError):
    pass


def resolve(address: str, namespace: str, namespaces: list[str]) -> ua.NodeId:
    """`nsu=<uri>;s=…` / `ns=<index>;…` / `i=…`, `s=…`, `g=…`, `b=…` in the source's
    namespace / anything else: a string identifier in the source's namespace."""
    try:
        if address.startswith("nsu="):
            uri, sep, rest = address[4:].partition(";")
            if not sep:
                raise AddressError(f"{address!r}: expected nsu=<namespace URI>;<identifier>")
            return ua.NodeId.from_string(f"ns={_index(uri, namespaces)};{rest}")
        if address.startswith("ns="):
            return ua.NodeId.from_string(address)
        index = _index(namespace, namespaces)
        if address.startswith(_NODE_ID_FORMS):
            return ua.NodeId.from_string(f"ns={index};{address}")
        return ua.NodeId(address, index)
    except AddressError:
        raise
    except Exception as exc:  # asyncua raises several kinds for a malformed NodeId text
        raise AddressError(f"{address!r} is not a NodeId: {exc}") from None


def _index(uri: str, namespaces: list[str]) -> int:
    try:
        return namespaces.index(uri)
    except ValueError:
        raise AddressError(f"the server has no namespace {uri!r}; it has: "
                           f"{', '.join(namespaces)}") from None
