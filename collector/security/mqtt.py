"""How to reach an MQTT broker and prove who we are: URL, credentials, TLS. Used by the
collector's MQTT source and by the simulators' publishers alike."""

from __future__ import annotations

import ssl
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse


@dataclass(frozen=True)
class MqttConnection:
    """Where the broker is and how to prove who we are. `mqtts://` speaks TLS and checks the
    broker's certificate (against `ca_file`, else the system's CAs) and host name;
    `client_cert`/`client_key` (PEM) answer a broker that requires client certificates."""

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | Path | None = None
    client_cert: str | Path | None = None
    client_key: str | Path | None = None   # None: the key is inside client_cert

    def __post_init__(self) -> None:
        scheme = urlparse(self.url).scheme
        if scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"an MQTT broker URL starts with mqtt:// or mqtts://: {self.url!r}")
        if scheme == "mqtt" and (self.ca_file or self.client_cert):
            raise ValueError(f"a CA file or client certificate needs an mqtts:// URL, "
                             f"not {self.url!r}")
        if self.client_key and not self.client_cert:
            raise ValueError("a client key needs its client certificate")
        if self.password and not self.username:
            raise ValueError("an MQTT password needs a user name")

    @property
    def tls(self) -> bool:
        return urlparse(self.url).scheme == "mqtts"

    @property
    def host(self) -> str:
        return urlparse(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlparse(self.url).port or (8883 if self.tls else 1883)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def tls_context(self) -> TlsContext:
        """For any paho client of this broker (`client.tls_set_context`)."""
        context = TlsContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies certificate and host name
        if self.ca_file:
            context.load_verify_locations(cafile=self.ca_file)
        else:
            context.load_default_certs()
        if self.client_cert:
            context.load_cert_chain(self.client_cert, self.client_key)
        return context


class TlsContext(ssl.SSLContext):
    """Remembers the socket it wrapped last: paho leaves it open when the handshake fails.
    (A weak reference: the socket refers to its context, and a cycle would leave paho's
    sockets to the garbage collector.)"""

    last_socket: weakref.ref[ssl.SSLSocket] | None = None

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        sock = super().wrap_socket(*args, **kwargs)
        self.last_socket = weakref.ref(sock)
        return sock

    def close_failed_socket(self) -> bool:
        """Close the socket of a failed handshake; False if none was begun."""
        sock = self.last_socket() if self.last_socket is not None else None
        self.last_socket = None
        if sock is None:
            return False
        sock.close()
        return True
