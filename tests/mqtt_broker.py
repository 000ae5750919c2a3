"""A private Mosquitto for tests that must own their broker: TLS, passwords, mutual TLS,
or stopping and restarting it under a client. Tests that only need *a* broker use the local
stack's one on 127.0.0.1:1883.

    with MosquittoBroker(tls=True, users={"meter": "s3cret"}) as broker:
        broker.url            # mqtts://127.0.0.1:<free port>
        broker.ca_file        # the CA that signed the broker's certificate (PEM)
        broker.restart()      # same port, same certificates; sessions are lost
                              # unless persistence=True

Each broker lives in its own temporary folder (config, certificates, password file, log,
persistence); the process is killed and the folder removed on exit. `broker.log()` gives
Mosquitto's log for assertion messages.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import ipaddress
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"
HOST = "127.0.0.1"


class BrokerError(RuntimeError):
    pass


@dataclass(frozen=True)
class IssuedCertificate:
    cert_file: Path
    key_file: Path


class CertificateAuthority:
    """A throw-away CA writing PEM files into `directory`. A second instance is an
    *untrusted* CA for tests that a client refuses a broker it cannot verify."""

    def __init__(self, directory: Path, name: str = "smeltwatch test CA") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        public = self._key.public_key()
        self._cert = (self._builder(self._name, public)
                      .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                      .add_extension(_key_usage(cert_sign=True), critical=True)
                      .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public),
                                     critical=False)
                      .sign(self._key, hashes.SHA256()))
        self.cert_file = directory / "ca.pem"
        self.cert_file.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, common_name: str, *, server: bool,
              names: tuple[str, ...] = ("localhost", HOST)) -> IssuedCertificate:
        """A leaf certificate: for a server valid for `names` (host names or IP addresses),
        for a client with `common_name` as its identity."""
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (self._builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                                common_name)]),
                                 key.public_key())
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True)
                   .add_extension(_key_usage(cert_sign=False), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       self._key.public_key()), critical=False))
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        issued = IssuedCertificate(self.directory / f"{common_name}.pem",
                                   self.directory / f"{common_name}.key")
        issued.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                      serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
        issued.key_file.chmod(0o600)
        return issued

    def _builder(self, subject: x509.Name,
                 public: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        now = datetime.now(UTC)
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(self._name)
                .public_key(public).serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(hours=1))
                .not_valid_after(now + timedelta(days=2))
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public),
                               critical=False))


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=cert_sign, crl_sign=cert_sign, encipher_only=False,
                         decipher_only=False)


def write_password_file(path: Path, users: Mapping[str, str]) -> None:
    """Mosquitto's password file, through `mosquitto_passwd` when it is installed."""
    path.write_text("", encoding="utf-8")
    if Path(MOSQUITTO_PASSWD).is_file():
        for user, password in users.items():
            subprocess.run([MOSQUITTO_PASSWD, "-b", str(path), user, password], check=True,
                           capture_output=True, timeout=30)
    else:
        path.write_text("".join(f"{user}:{pbkdf2_password_hash(password)}\n"
                                for user, password in users.items()), encoding="utf-8")
    path.chmod(0o600)


def pbkdf2_password_hash(password: str, iterations: int = 101) -> str:
    """Mosquitto 2's `$7$` format: PBKDF2-HMAC-SHA512, base64 salt and hash."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return (f"$7${iterations}${base64.b64encode(salt).decode()}"
            f"${base64.b64encode(digest).decode()}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class MosquittoBroker:
    """A `mosquitto` process on a free loopback port. `tls`: the listener speaks TLS with a
    certificate for `server_names` from its own CA (`ca_file`); `require_client_certificate`:
    mutual TLS, clients present a certificate from that CA (see `issue_client_certificate`);
    `users`: a password file and no anonymous clients; `persistence`: sessions and queued
    messages survive `restart` (saved on a clean stop only)."""

    def __init__(self, *, tls: bool = False, users: Mapping[str, str] | None = None,
                 require_client_certificate: bool = False, persistence: bool = False,
                 server_names: tuple[str, ...] = ("localhost", HOST), extra_config: str = "",
                 start_timeout_s: float = 15.0) -> None:
        if require_client_certificate and not tls:
            raise ValueError("a client certificate needs a TLS listener")
        self.tls, self.users = tls, dict(users or {})
        self.require_client_certificate = require_client_certificate
        self.persistence, self.extra_config = persistence, extra_config
        self.start_timeout_s = start_timeout_s
        self.directory = Path(tempfile.mkdtemp(prefix="smeltwatch-mosquitto-"))
        self.ca = CertificateAuthority(self.directory / "pki") if tls else None
        self._server = (self.ca.issue("broker", server=True, names=server_names)
                        if self.ca is not None else None)
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file = self.directory / "mosquitto.log"

    @property
    def host(self) -> str:
        return HOST

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{HOST}:{self.port}"

    @property
    def ca_file(self) -> Path:
        if self.ca is None:
            raise BrokerError("this broker has no TLS listener")
        return self.ca.cert_file

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def issue_client_certificate(self, name: str) -> IssuedCertificate:
        if self.ca is None:
            raise BrokerError("this broker has no TLS listener")
        return self.ca.issue(name, server=False)

    def start(self) -> None:
        """Start on a free port (the first time) or on the same port (after `stop`)."""
        if self.running:
            return
        if self.port == 0:
            self._write_files()
            for _ in range(5):  # another process may take the free port before us
                self.port = free_port()
                if self._launch():
                    return
            raise BrokerError(f"mosquitto did not start:\n{self.log()}")
        if not self._launch():
            raise BrokerError(f"mosquitto did not restart on port {self.port}:\n{self.log()}")

    def stop(self, *, abrupt: bool = False) -> None:
        """Stop the broker: SIGTERM (a clean shutdown, persistence saved) or, with `abrupt`,
        SIGKILL (as a power cut does)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            if abrupt:
                process.kill()
            else:
                process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def restart(self, *, abrupt: bool = False) -> None:
        self.stop(abrupt=abrupt)
        self.start()

    def log(self) -> str:
        try:
            return self._log_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> MosquittoBroker:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _write_files(self) -> None:
        if self.users:
            write_password_file(self.directory / "passwords", self.users)

    def _config(self) -> str:
        lines = [f"listener {self.port} {HOST}",
                 f"allow_anonymous {'false' if self.users else 'true'}",
                 f"persistence {'true' if self.persistence else 'false'}",
                 f"persistence_location {self.directory}/",
                 "log_dest stderr",
                 "log_type error", "log_type warning", "log_type notice",
                 "log_type information"]
        if os.geteuid() == 0:
            lines.append(f"user {getpass.getuser()}")  # else it drops to `mosquitto`
        if self.users:
            lines.append(f"password_file {self.directory / 'passwords'}")
        if self.ca is not None and self._server is not None:
            lines += [f"cafile {self.ca.cert_file}",
                      f"certfile {self._server.cert_file}",
                      f"keyfile {self._server.key_file}",
                      f"require_certificate {str(self.require_client_certificate).lower()}"]
        if self.extra_config:
            lines.append(self.extra_config)
        return "\n".join(lines) + "\n"

    def _launch(self) -> bool:
        config = self.directory / "mosquitto.conf"
        config.write_text(self._config(), encoding="utf-8")
        with self._log_file.open("ab") as log_file:
            self._process = subprocess.Popen([MOSQUITTO, "-c", str(config)],
                                             stdout=log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process.wait()
                self._process = None
                return False
            try:
                with socket.create_connection((HOST, self.port), timeout=1):
                    return True
            except OSError:
                time.sleep(0.05)
        self.stop(abrupt=True)
        return False
