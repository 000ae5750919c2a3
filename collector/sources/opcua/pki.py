"""The collector's OPC UA certificates: its own application-instance certificate, made once and
kept, and an explicit trust store for the certificates of the servers it talks to.

Layout under the PKI directory (default `.smeltwatch/pki`):

    own/cert.der, own/key.pem   the collector's certificate and private key (made on first use)
    trusted/                    server certificates the operator trusts (DER or PEM, any name)
    rejected/<THUMBPRINT>.der   server certificates seen but not trusted (to trust later)

A server is trusted when the SHA-1 thumbprint of its certificate (as OPC UA computes it) matches
a certificate in `trusted/`; anything else is refused and kept in `rejected/`, and the error
says which command trusts it (Telegraf #17608, asyncua #82). The own certificate is never
replaced behind the operator's back (Telegraf #11454): servers that trust it keep trusting it.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asyncua import Client, ua
from asyncua.crypto import security_policies
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from collector.security.certificates import ensure_certificate

log = logging.getLogger(__name__)

DEFAULT_PKI_DIR = Path(".smeltwatch/pki")
TRUST_COMMAND = "smeltwatch collect certs trust"
MIN_PREFIX = 8  # hex digits of a thumbprint that name a certificate on the command line

SECURITY_SETTINGS = ("none", "sign", "sign_encrypt", "auto")
_NONE, _SIGN, _ENCRYPT = (ua.MessageSecurityMode.None_, ua.MessageSecurityMode.Sign,
                          ua.MessageSecurityMode.SignAndEncrypt)
_MODE_NAMES = {_NONE: "None", _SIGN: "Sign", _ENCRYPT: "SignAndEncrypt"}
_MODE_RANK = {_NONE: 0, _SIGN: 1, _ENCRYPT: 2}
# Policies asyncua implements that are not deprecated, weakest first. Basic128Rsa15 and Basic256
# (SHA-1) are deprecated by OPC UA 1.04 and never chosen.
_POLICIES: tuple[Any, ...] = (
    security_policies.SecurityPolicyNone,
    security_policies.SecurityPolicyAes128Sha256RsaOaep,
    security_policies.SecurityPolicyBasic256Sha256,
    security_policies.SecurityPolicyAes256Sha256RsaPss,
)
_POLICY_BY_URI: dict[str, Any] = {p.URI: p for p in _POLICIES}
_POLICY_RANK = {p.URI: i for i, p in enumerate(_POLICIES)}
_BASIC256SHA256 = security_policies.SecurityPolicyBasic256Sha256.URI
_NONE_URI = security_policies.SecurityPolicyNone.URI
# the explicit settings of a source: (policy URI, mode)
_EXPLICIT = {"none": (_NONE_URI, _NONE), "sign": (_BASIC256SHA256, _SIGN),
             "sign_encrypt": (_BASIC256SHA256, _ENCRYPT)}
_WANTED = {"none": "None", "sign": "Basic256Sha256 Sign",
           "sign_encrypt": "Basic256Sha256 SignAndEncrypt",
           "auto": "None, Basic256Sha256, Aes128_Sha256_RsaOaep or Aes256_Sha256_RsaPss"}


class OpcUaSecurityError(Exception):
    """Anything about certificates, trust or security settings; the message says what to do."""


class UntrustedServerCertificate(OpcUaSecurityError):
    def __init__(self, message: str, endpoint: str, thumbprint: str, saved_to: Path) -> None:
        super().__init__(message)
        self.endpoint, self.thumbprint, self.saved_to = endpoint, thumbprint, saved_to


class ServerCertificateNotValid(OpcUaSecurityError):
    """A trusted server certificate outside its validity period."""


class NoMatchingEndpoint(OpcUaSecurityError):
    pass


class CertificateNotFound(OpcUaSecurityError):
    """An unknown or ambiguous thumbprint, or an unreadable certificate file."""


@dataclass(frozen=True)
class OwnCertificate:
    cert_path: Path
    key_path: Path
    application_uri: str
    thumbprint: str


@dataclass(frozen=True)
class CertificateInfo:
    path: Path
    subject: str
    thumbprint: str
    not_before: datetime
    not_after: datetime
    application_uri: str | None

    def validity(self, now: datetime | None = None) -> str:
        """'' when valid now, else why not."""
        now = now or datetime.now(UTC)
        if now < self.not_before:
            return f"not valid before {_when(self.not_before)}"
        if now > self.not_after:
            return f"expired on {_when(self.not_after)}"
        return ""


@dataclass(frozen=True)
class Listing:
    own: CertificateInfo | None
    trusted: list[CertificateInfo]
    rejected: list[CertificateInfo]


def thumbprint(der: bytes) -> str:
    """The OPC UA thumbprint: SHA-1 of the DER encoding, shown as 40 upper-case hex digits."""
    return hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()


def default_application_uri() -> str:
    return f"urn:smeltwatch:collector:{socket.gethostname()}"


class Pki:
    """The PKI directory. Nothing is read or written until a method needs it."""

    def __init__(self, directory: Path = DEFAULT_PKI_DIR) -> None:
        self.directory = directory
        self.own_dir = directory / "own"
        self.trusted_dir = directory / "trusted"
        self.rejected_dir = directory / "rejected"

    # --- own certificate --------------------------------------------------------------------
    def own_certificate(self) -> OwnCertificate:
        """The collector's certificate: made on the first call, the same files ever after."""
        cert_path, key_path = self.own_dir / "cert.der", self.own_dir / "key.pem"
        if not (cert_path.exists() and key_path.exists()):
            self._make_own(cert_path, key_path)
        der = cert_path.read_bytes()
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise OpcUaSecurityError(f"the collector's certificate {cert_path} cannot be read "
                                     f"({exc}); move {self.own_dir} aside to make a new one "
                                     "(then have each server trust the new one)") from None
        info = _info(cert_path, cert)
        problem = info.validity()
        if problem:
            raise OpcUaSecurityError(
                f"the collector's certificate {cert_path} is {problem}; move {self.own_dir} "
                "aside to make a new one (then have each server trust the new one)")
        return OwnCertificate(cert_path, key_path,
                              info.application_uri or default_application_uri(),
                              info.thumbprint)

    def application_uri(self) -> str:
        """The URI the client announces: its certificate's, or the default before one exists."""
        cert_path = self.own_dir / "cert.der"
        if cert_path.exists():
            try:
                uri = _application_uri(x509.load_der_x509_certificate(cert_path.read_bytes()))
            except ValueError:
                uri = None
            if uri:
                return uri
        return default_application_uri()

    def _make_own(self, cert_path: Path, key_path: Path) -> None:
        self.own_dir.mkdir(parents=True, exist_ok=True)
        with (self.own_dir / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two collectors starting at once make one cert
            if cert_path.exists() and key_path.exists():
                return
            if cert_path.exists() or key_path.exists():
                raise OpcUaSecurityError(
                    f"{self.own_dir} holds only one of cert.der and key.pem; restore the other "
                    f"or move {self.own_dir} aside to make a new certificate")
            host = socket.gethostname()
            staging = self.own_dir / f".new-{os.getpid()}"
            name = re.sub(r"[^A-Za-z0-9._-]", "_", f"smeltwatch-collector-{host}")
            new_cert, new_key = ensure_certificate(staging, name,
                                                   f"urn:smeltwatch:collector:{host}", host)
            new_key.replace(key_path)
            new_cert.replace(cert_path)
            shutil.rmtree(staging, ignore_errors=True)
            log.info("made the collector's OPC UA certificate %s (thumbprint %s)", cert_path,
                     thumbprint(cert_path.read_bytes()))

    # --- server certificates ----------------------------------------------------------------
    def check_server(self, der: bytes, endpoint: str) -> None:
        """Accept the server's certificate only if it is in `trusted/` and valid now; otherwise
        keep it in `rejected/` and raise an error that says how to trust it."""
        if not der:
            raise OpcUaSecurityError(f"the OPC UA server at {endpoint} offers a secure endpoint "
                                     "without a certificate; it cannot be trusted")
        der = first_certificate(der)
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise OpcUaSecurityError(f"the certificate of the OPC UA server at {endpoint} "
                                     f"cannot be read: {exc}") from None
        thumb = thumbprint(der)
        trusted = {i.thumbprint: i for i in self._certificates(self.trusted_dir)}
        info = _info(Path(), cert)
        if thumb in trusted:
            problem = info.validity()
            if problem:
                raise ServerCertificateNotValid(
                    f"the trusted certificate of the OPC UA server at {endpoint} ({info.subject}, "
                    f"thumbprint {thumb}) is {problem}; the server needs a valid certificate "
                    f"(then trust the new one with: {self.trust_command('<THUMBPRINT>')})")
            return
        self.rejected_dir.mkdir(parents=True, exist_ok=True)
        saved = self.rejected_dir / f"{thumb}.der"
        if not saved.exists():
            saved.write_bytes(der)
        problem = info.validity()
        raise UntrustedServerCertificate(
            f"the OPC UA server at {endpoint} presented a certificate that is not trusted: "
            f"{info.subject}, thumbprint {thumb}, valid {_when(info.not_before)} to "
            f"{_when(info.not_after)}{f' ({problem})' if problem else ''}; saved to {saved}; "
            "if the thumbprint is the one the server shows, trust it with: "
            f"{self.trust_command(thumb)}", endpoint, thumb, saved)

    def trust_command(self, thumb: str) -> str:
        option = "" if self.directory == DEFAULT_PKI_DIR else f" --pki-dir {self.directory}"
        return f"{TRUST_COMMAND} {thumb}{option}"

    def trust(self, thumbprint_or_path: str) -> Path:
        """Trust a rejected certificate (by a thumbprint prefix of at least 8 hex digits) or a
        certificate file; returns its path in `trusted/`."""
        path = Path(thumbprint_or_path)
        if path.is_file():
            certs = _load_certificates(path.read_bytes())
            if not certs:
                raise CertificateNotFound(f"{path} holds no certificate (DER or PEM expected)")
            targets = []
            for cert in certs:
                der = cert.public_bytes(serialization.Encoding.DER)
                targets.append(self._move_to_trusted(der, thumbprint(der)))
            return targets[0]
        prefix = _prefix(thumbprint_or_path)
        already = [i for i in self._certificates(self.trusted_dir)
                   if i.thumbprint.startswith(prefix)]
        rejected = [i for i in self._certificates(self.rejected_dir)
                    if i.thumbprint.startswith(prefix)]
        if not rejected and len(already) == 1:
            return already[0].path  # trusting twice is not an error
        match = _one(rejected, prefix, "rejected", self.rejected_dir)
        return self._move_to_trusted(match.path.read_bytes(), match.thumbprint)

    def reject(self, thumb: str) -> Path:
        """Stop trusting a server certificate: move it from `trusted/` to `rejected/`."""
        prefix = _prefix(thumb)
        trusted = [i for i in self._certificates(self.trusted_dir)
                   if i.thumbprint.startswith(prefix)]
        match = _one(trusted, prefix, "trusted", self.trusted_dir)
        files = sorted({i.path for i in trusted if i.thumbprint == match.thumbprint})
        for path in files:
            count = len(_load_certificates(path.read_bytes()))
            if count > 1:
                raise CertificateNotFound(
                    f"{path} holds {count} certificates; take out the one with thumbprint "
                    f"{match.thumbprint} by hand (or move the whole file to {self.rejected_dir})")
        self.rejected_dir.mkdir(parents=True, exist_ok=True)
        target = self.rejected_dir / f"{match.thumbprint}.der"
        target.write_bytes(_load_certificates(files[0].read_bytes())[0].public_bytes(
            serialization.Encoding.DER))
        for path in files:
            path.unlink()
        return target

    def listing(self) -> Listing:
        own_path = self.own_dir / "cert.der"
        own = None
        if own_path.exists():
            own = next(iter(self._certificates(self.own_dir, [own_path])), None)
        return Listing(own, self._certificates(self.trusted_dir),
                       self._certificates(self.rejected_dir))

    def _move_to_trusted(self, der: bytes, thumb: str) -> Path:
        self.trusted_dir.mkdir(parents=True, exist_ok=True)
        target = self.trusted_dir / f"{thumb}.der"
        for existing in self._certificates(self.trusted_dir):
            if existing.thumbprint == thumb:
                target = existing.path
                break
        else:
            target.write_bytes(der)
        (self.rejected_dir / f"{thumb}.der").unlink(missing_ok=True)
        return target

    def _certificates(self, directory: Path,
                      files: list[Path] | None = None) -> list[CertificateInfo]:
        out: list[CertificateInfo] = []
        for path in files if files is not None else _files(directory):
            try:
                certs = _load_certificates(path.read_bytes())
            except OSError as exc:
                log.warning("cannot read %s: %s", path, exc)
                continue
            if not certs:
                log.warning("%s is not a certificate (DER or PEM); ignored", path)
            out.extend(_info(path, c) for c in certs)
        return out


# --- endpoints ----------------------------------------------------------------------------------

def describe_endpoint(endpoint: ua.EndpointDescription) -> str:
    policy = str(endpoint.SecurityPolicyUri).rsplit("#", 1)[-1]
    mode = _MODE_NAMES.get(endpoint.SecurityMode, str(endpoint.SecurityMode))
    text = policy if endpoint.SecurityMode == _NONE else f"{policy} {mode}"
    setting = _setting_of(endpoint)
    return text + (f" (security: {setting})" if setting else " (not supported)")


def _setting_of(endpoint: ua.EndpointDescription) -> str:
    for name, (uri, mode) in _EXPLICIT.items():
        if endpoint.SecurityPolicyUri == uri and endpoint.SecurityMode == mode:
            return name
    if endpoint.SecurityPolicyUri in _POLICY_BY_URI:
        return "auto"
    return ""  # a policy asyncua does not implement, or a deprecated one


def choose_endpoint(endpoints: list[ua.EndpointDescription],
                    security: str) -> ua.EndpointDescription:
    """The endpoint for a source's `security` setting: none | sign | sign_encrypt
    (Basic256Sha256) | auto (the strongest the server offers among the policies asyncua
    implements: a secure endpoint over None, then the server's SecurityLevel, then
    SignAndEncrypt over Sign, then the stronger policy)."""
    if security not in SECURITY_SETTINGS:
        raise OpcUaSecurityError(f"unknown OPC UA security setting {security!r}; choose from "
                                 f"{', '.join(SECURITY_SETTINGS)}")
    usable = [e for e in endpoints if str(e.EndpointUrl).startswith("opc.tcp://")
              and e.SecurityMode in _MODE_RANK]
    if security == "auto":
        candidates = [e for e in usable if e.SecurityPolicyUri in _POLICY_BY_URI]
    else:
        uri, mode = _EXPLICIT[security]
        candidates = [e for e in usable if e.SecurityPolicyUri == uri and e.SecurityMode == mode]
    if not candidates:
        offered = sorted({describe_endpoint(e) for e in endpoints}) or ["no endpoints at all"]
        wanted = _WANTED[security]
        url = endpoints[0].EndpointUrl if endpoints else "the server"
        raise NoMatchingEndpoint(f"{url} offers no endpoint for security {security!r} "
                                 f"({wanted}); it offers: {'; '.join(offered)}")

    def strength(e: ua.EndpointDescription) -> tuple[int, int, int, int]:
        return (int(e.SecurityMode != _NONE), int(e.SecurityLevel or 0),
                _MODE_RANK[e.SecurityMode], _POLICY_RANK.get(e.SecurityPolicyUri, -1))

    return max(candidates, key=strength)


async def secure_client(client: Client, endpoint: ua.EndpointDescription, pki: Pki,
                        username: str | None, password: str | None) -> None:
    """Prepare `client` (not yet connected) for `endpoint`: check the server's certificate
    against the trust store, set the collector's certificate, the endpoint's policy and mode,
    the application URI and the user identity. Call `client.connect()` next."""
    url = str(endpoint.EndpointUrl)
    _check_identity(endpoint, username, password)
    if username is not None:
        client.set_user(username)
        client.set_password(password or "")
    if endpoint.SecurityMode == _NONE:
        client.application_uri = pki.application_uri()
        if username is not None and all(
                (t.SecurityPolicyUri or _NONE_URI) == _NONE_URI for t in
                endpoint.UserIdentityTokens or [] if t.TokenType == ua.UserTokenType.UserName):
            log.warning("%s: the password goes to the server unencrypted (security none); "
                        "use security sign_encrypt if the server offers it", url)
        return
    policy = _POLICY_BY_URI.get(endpoint.SecurityPolicyUri)
    if policy is None:
        raise NoMatchingEndpoint(f"{url}: security policy {endpoint.SecurityPolicyUri} is not "
                                 "supported (deprecated or not implemented by asyncua)")
    server_der = first_certificate(bytes(endpoint.ServerCertificate or b""))
    pki.check_server(server_der, url)
    own = pki.own_certificate()
    client.application_uri = own.application_uri  # before set_security: it checks the cert
    await client.set_security(policy, str(own.cert_path), str(own.key_path),
                              server_certificate=server_der, mode=endpoint.SecurityMode)


def _check_identity(endpoint: ua.EndpointDescription, username: str | None,
                    password: str | None) -> None:
    tokens = {t.TokenType for t in endpoint.UserIdentityTokens or []}
    names = {ua.UserTokenType.Anonymous: "anonymous", ua.UserTokenType.UserName: "user name",
             ua.UserTokenType.Certificate: "certificate", ua.UserTokenType.IssuedToken: "token"}
    offered = ", ".join(sorted(names.get(t, str(t)) for t in tokens)) or "nothing"
    url = endpoint.EndpointUrl
    if username is not None and ua.UserTokenType.UserName not in tokens:
        raise OpcUaSecurityError(f"{url} does not accept a user name on this endpoint "
                                 f"({describe_endpoint(endpoint)}); it accepts: {offered}")
    if username is not None and password is None:
        raise OpcUaSecurityError(f"{url}: a user name is set ({username!r}) but no password "
                                 "(set SMELTWATCH_OPCUA_PASSWORD)")
    if username is None and tokens and ua.UserTokenType.Anonymous not in tokens:
        raise OpcUaSecurityError(f"{url} refuses anonymous sessions; give a user name and a "
                                 f"password (it accepts: {offered})")


def describe_connect_error(exc: BaseException, url: str, pki: Pki) -> str | None:
    """An operator's explanation of a refused connection, or None if it is not about security.
    A server that does not trust the collector's certificate answers BadSecurityChecksFailed
    or a BadCertificate… status."""
    if isinstance(exc, ua.UaStatusCodeError):
        name = ua.StatusCode(exc.code).name
        if name == "BadSecurityChecksFailed" or name.startswith("BadCertificate"):
            own = pki.own_certificate()
            return (f"the OPC UA server at {url} refused the collector's certificate ({name}); "
                    f"have the server trust {own.cert_path} (thumbprint {own.thumbprint}, "
                    f"application URI {own.application_uri}): copy it into the server's "
                    "trusted client certificates, or accept it in the server's rejected list")
        if name in ("BadUserAccessDenied", "BadIdentityTokenInvalid",
                    "BadIdentityTokenRejected"):
            return (f"the OPC UA server at {url} refused the user name or password ({name}); "
                    "check the user name and SMELTWATCH_OPCUA_PASSWORD")
    return None


# --- helpers ------------------------------------------------------------------------------------

def first_certificate(der: bytes) -> bytes:
    """The leading certificate of a DER blob that may be a chain (servers may send theirs)."""
    if len(der) < 2 or der[0] != 0x30:
        return der
    first = der[1]
    if first < 0x80:
        length, header = first, 2
    else:
        n = first & 0x7F
        length, header = int.from_bytes(der[2:2 + n], "big"), 2 + n
    return der[:header + length]


def _load_certificates(data: bytes) -> list[x509.Certificate]:
    try:
        if b"-----BEGIN" in data:
            return list(x509.load_pem_x509_certificates(data))
        return [x509.load_der_x509_certificate(first_certificate(data))]
    except ValueError:
        return []


def _info(path: Path, cert: x509.Certificate) -> CertificateInfo:
    der = cert.public_bytes(serialization.Encoding.DER)
    return CertificateInfo(path, cert.subject.rfc4514_string() or "(no subject)", thumbprint(der),
                           cert.not_valid_before_utc, cert.not_valid_after_utc,
                           _application_uri(cert))


def _application_uri(cert: x509.Certificate) -> str | None:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


def _files(directory: Path) -> Iterator[Path]:
    if directory.is_dir():
        yield from sorted(p for p in directory.iterdir()
                          if p.is_file() and not p.name.startswith("."))


def _prefix(text: str) -> str:
    prefix = re.sub(r"[\s:]", "", text).upper()
    if len(prefix) < MIN_PREFIX or not re.fullmatch(r"[0-9A-F]+", prefix):
        raise CertificateNotFound(
            f"{text!r} is neither a certificate file nor a thumbprint; give at least "
            f"{MIN_PREFIX} hex digits of the thumbprint (see 'smeltwatch collect certs list')")
    return prefix


def _one(found: list[CertificateInfo], prefix: str, where: str,
         directory: Path) -> CertificateInfo:
    unique = {i.thumbprint: i for i in found}
    if len(unique) == 1:
        return next(iter(unique.values()))
    if not unique:
        raise CertificateNotFound(f"no {where} certificate has a thumbprint starting with "
                                  f"{prefix} (in {directory}; see 'smeltwatch collect certs "
                                  "list')")
    choices = "; ".join(f"{i.thumbprint} {i.subject}" for i in unique.values())
    raise CertificateNotFound(f"thumbprint prefix {prefix} is ambiguous: it matches {choices}; "
                              "give more digits")


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
