"""Security of a simulated OPC UA server: None, or Basic256Sha256 Sign / SignAndEncrypt with an
application-instance certificate made once and kept, optional username/password, and an
optional trust list of client certificates (as a real PLC is configured)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from asyncua import Server, ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.user_managers import UserManager

from collector.security.certificates import ensure_certificate

POLICIES = {"none": ua.SecurityPolicyType.NoSecurity,
            "sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
            "sign_encrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt}
DEFAULT_CERT_DIR = Path(".smeltwatch/sim-certs")


@dataclass(frozen=True)
class OpcUaSecurity:
    """`policies`: any of none | sign | sign_encrypt (Basic256Sha256). `users`: (name, password)
    pairs; when given, anonymous sessions are refused. `trusted_clients`: a folder of client
    certificates (DER or PEM); when given, a secure channel from any other client is refused
    (without it every client certificate is accepted, as on a commissioning PLC)."""

    policies: tuple[str, ...] = ("none",)
    cert_dir: Path | None = None
    users: tuple[tuple[str, str], ...] = ()
    trusted_clients: Path | None = None

    def __post_init__(self) -> None:
        unknown = set(self.policies) - set(POLICIES)
        if unknown or not self.policies:
            raise ValueError(f"unknown OPC UA security policy {sorted(unknown)}; "
                             f"choose from {', '.join(POLICIES)}")

    @property
    def secure(self) -> bool:
        return bool(set(self.policies) - {"none"})


class PasswordUsers(UserManager):  # type: ignore[misc]  # asyncua is untyped here
    def __init__(self, users: dict[str, str]) -> None:
        self.users = users

    def get_user(self, iserver: object, username: str | None = None,
                 password: str | None = None, certificate: object = None) -> User | None:
        if username is not None and self.users.get(username) == password:
            return User(role=UserRole.User, name=username)
        return None


def server_with_security(security: OpcUaSecurity) -> Server:
    return Server(user_manager=PasswordUsers(dict(security.users)) if security.users else None)


async def apply_security(server: Server, security: OpcUaSecurity, name: str,
                         application_uri: str, host: str) -> None:
    """Call after `init()` and before `start()`."""
    server.set_security_policy([POLICIES[p] for p in security.policies])
    if security.users:
        # without this asyncua still advertises Anonymous alongside UserName
        server.set_identity_tokens([ua.UserNameIdentityToken])
    if not security.secure:
        return
    cert, key = ensure_certificate(security.cert_dir or DEFAULT_CERT_DIR, name, application_uri,
                                   host)
    await server.load_certificate(str(cert))
    await server.load_private_key(str(key))
    if security.trusted_clients is not None:
        store = TrustStore([security.trusted_clients], [])
        await store.load()
        checks = (CertificateValidatorOptions.TRUSTED_VALIDATION
                  | CertificateValidatorOptions.PEER_CLIENT)
        server.set_certificate_validator(CertificateValidator(checks, store))
