"""The collector's certificate and trust store, against simulated PLCs (real asyncua servers)."""

from __future__ import annotations

import shutil
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from asyncua import Client, ua
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from collector.sources.opcua.cli import certs_app
from collector.sources.opcua.pki import (
    CertificateNotFound,
    NoMatchingEndpoint,
    Pki,
    ServerCertificateNotValid,
    UntrustedServerCertificate,
    choose_endpoint,
    describe_connect_error,
    secure_client,
    thumbprint,
)
from simulators.opcua import OpcUaSecurity
from simulators.runner import RunOptions, ScenarioRun
from tests.simulators.conftest import free_port, make_plant, short_scenario

SOURCE = "plc-refining"
NAMESPACE = "urn:smeltwatch:yulin-1"
MELT = "refining/refining-1.refining_melt_temp_c"


@dataclass
class Plc:
    url: str
    server_cert: Path  # the PLC's own certificate (what an operator compares thumbprints with)
    pki: Pki           # a collector PKI whose own certificate the PLC trusts


async def _start(security: OpcUaSecurity, play: bool) -> tuple[ScenarioRun, str]:
    plant, _ = make_plant()
    port = free_port()
    run = ScenarioRun(plant, short_scenario(hours=1), RunOptions(
        speed=0, only={SOURCE}, opcua_ports={SOURCE: port}, security=security))
    await run.start()
    if play:
        await run.play()
    return run, f"opc.tcp://127.0.0.1:{port}"


@pytest.fixture(scope="module")
async def secure_plc(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Plc]:
    """Basic256Sha256 SignAndEncrypt only; trusts exactly one collector certificate."""
    base = tmp_path_factory.mktemp("secure-plc")
    pki = Pki(base / "pki")
    trusted_clients = base / "plc-trusts"
    trusted_clients.mkdir()
    shutil.copy(pki.own_certificate().cert_path, trusted_clients / "collector.der")
    run, url = await _start(OpcUaSecurity(policies=("sign_encrypt",), cert_dir=base / "server",
                                          trusted_clients=trusted_clients), play=True)
    try:
        yield Plc(url, base / "server" / f"urn_smeltwatch_sim_{SOURCE}.der", pki)
    finally:
        await run.close()


async def _endpoints(url: str) -> list[ua.EndpointDescription]:
    endpoints: list[ua.EndpointDescription] = await Client(url, timeout=10) \
        .connect_and_get_server_endpoints()
    return endpoints


async def _read_melt(client: Client) -> float:
    ns = await client.get_namespace_index(NAMESPACE)
    value: float = await client.get_node(ua.NodeId(MELT, ns)).read_value()
    return value


def test_own_certificate_is_made_once_and_kept(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki")
    assert not (tmp_path / "pki").exists()  # the constructor does no I/O
    own = pki.own_certificate()
    assert own.cert_path == tmp_path / "pki" / "own" / "cert.der"
    assert own.key_path == tmp_path / "pki" / "own" / "key.pem"
    assert own.application_uri.startswith("urn:smeltwatch:collector:")
    assert stat.S_IMODE(own.key_path.stat().st_mode) == 0o600
    assert own.thumbprint == thumbprint(own.cert_path.read_bytes())
    assert len(own.thumbprint) == 40 and own.thumbprint == own.thumbprint.upper()
    key_before = own.key_path.read_bytes()
    again = Pki(tmp_path / "pki").own_certificate()  # a later start of the collector
    assert again == own
    assert again.key_path.read_bytes() == key_before


async def test_untrusted_server_is_refused_until_trusted_and_again_after_reject(
        secure_plc: Plc) -> None:
    pki, url = secure_plc.pki, secure_plc.url
    server_thumbprint = thumbprint(secure_plc.server_cert.read_bytes())
    endpoint = choose_endpoint(await _endpoints(url), "sign_encrypt")

    with pytest.raises(UntrustedServerCertificate) as refused:
        await secure_client(Client(url, timeout=10), endpoint, pki, None, None)
    message = str(refused.value)
    assert url in message
    assert f"thumbprint {server_thumbprint}" in message
    assert "CN=urn_smeltwatch_sim_plc-refining" in message
    assert f"smeltwatch collect certs trust {server_thumbprint} --pki-dir {pki.directory}" \
        in message
    saved = pki.rejected_dir / f"{server_thumbprint}.der"
    assert refused.value.saved_to == saved
    assert saved.read_bytes() == secure_plc.server_cert.read_bytes()
    assert [c.thumbprint for c in pki.listing().rejected] == [server_thumbprint]

    trusted = pki.trust(server_thumbprint[:8].lower())
    assert trusted.parent == pki.trusted_dir
    assert not saved.exists()
    client = Client(url, timeout=10)
    await secure_client(client, endpoint, pki, None, None)
    async with client:
        assert client.security_policy.Mode == ua.MessageSecurityMode.SignAndEncrypt
        assert 640 < await _read_melt(client) < 740

    back = pki.reject(server_thumbprint)
    assert back == saved and saved.exists()
    assert pki.listing().trusted == []
    with pytest.raises(UntrustedServerCertificate):
        await secure_client(Client(url, timeout=10), endpoint, pki, None, None)


async def test_the_plc_refuses_a_collector_it_does_not_trust(secure_plc: Plc,
                                                             tmp_path: Path) -> None:
    stranger = Pki(tmp_path / "stranger")
    stranger.trust(str(secure_plc.server_cert))  # we trust the PLC; it does not trust us
    client = Client(secure_plc.url, timeout=10)
    await secure_client(client, choose_endpoint(await _endpoints(secure_plc.url), "auto"),
                        stranger, None, None)
    with pytest.raises(ua.UaStatusCodeError) as refused:
        await client.connect()
    await client.disconnect()
    explained = describe_connect_error(refused.value, secure_plc.url, stranger)
    own = stranger.own_certificate()
    assert explained is not None
    assert f"the OPC UA server at {secure_plc.url} refused the collector's certificate" \
        in explained
    assert own.thumbprint in explained and str(own.cert_path) in explained


async def test_choose_endpoint_auto_picks_sign_and_encrypt(tmp_path: Path) -> None:
    run, url = await _start(OpcUaSecurity(policies=("none", "sign", "sign_encrypt"),
                                          cert_dir=tmp_path / "server"), play=False)
    try:
        endpoints = await _endpoints(url)
    finally:
        await run.close()
    assert len(endpoints) == 3
    best = choose_endpoint(endpoints, "auto")
    assert best.SecurityMode == ua.MessageSecurityMode.SignAndEncrypt
    assert best.SecurityPolicyUri.endswith("#Basic256Sha256")
    assert choose_endpoint(endpoints, "sign").SecurityMode == ua.MessageSecurityMode.Sign
    assert choose_endpoint(endpoints, "none").SecurityMode == ua.MessageSecurityMode.None_


async def test_sign_on_a_server_without_security_is_a_clear_error() -> None:
    run, url = await _start(OpcUaSecurity(policies=("none",)), play=False)
    try:
        endpoints = await _endpoints(url)
    finally:
        await run.close()
    with pytest.raises(NoMatchingEndpoint) as error:
        choose_endpoint(endpoints, "sign")
    assert str(error.value) == (f"{url} offers no endpoint for security 'sign' "
                                "(Basic256Sha256 Sign); it offers: None (security: none)")
    assert choose_endpoint(endpoints, "auto").SecurityMode == ua.MessageSecurityMode.None_


def _self_signed(not_before: datetime, not_after: datetime) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old-plc")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(not_before).not_valid_after(not_after).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def test_an_expired_trusted_certificate_is_refused(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    der = _self_signed(now - timedelta(days=400), now - timedelta(days=35))
    pki = Pki(tmp_path / "pki")
    pki.trusted_dir.mkdir(parents=True)
    pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    (pki.trusted_dir / "old plc.crt").write_bytes(pem)  # PEM, any file name
    with pytest.raises(ServerCertificateNotValid, match=r"opc\.tcp://old:4840 \(CN=old-plc, "
                       rf"thumbprint {thumbprint(der)}\) is expired on "):
        pki.check_server(der, "opc.tcp://old:4840")


def test_trust_and_reject_say_what_is_wrong(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki")
    with pytest.raises(CertificateNotFound, match="give at least 8 hex digits"):
        pki.trust("ABC")
    with pytest.raises(CertificateNotFound,
                       match="no rejected certificate has a thumbprint starting with 0123ABCD"):
        pki.trust("0123abcd")
    with pytest.raises(CertificateNotFound,
                       match="no trusted certificate has a thumbprint starting with 0123ABCD"):
        pki.reject("01:23:AB:CD")


def test_certs_commands(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    der = _self_signed(now - timedelta(days=1), now + timedelta(days=30))
    pki_dir = tmp_path / "pki"
    pki = Pki(pki_dir)
    with pytest.raises(UntrustedServerCertificate):
        pki.check_server(der, "opc.tcp://plc:4840")
    thumb = thumbprint(der)
    app = typer.Typer()
    app.add_typer(certs_app, name="certs")
    runner = CliRunner()

    listed = runner.invoke(app, ["certs", "list", "--pki-dir", str(pki_dir)])
    assert listed.exit_code == 0, listed.output
    own = pki.own_certificate()
    assert f"own certificate: {own.cert_path}  thumbprint {own.thumbprint}" in listed.stdout
    assert f"  {thumb}  CN=old-plc  until " in listed.stdout.split("rejected server")[1]

    trusted = runner.invoke(app, ["certs", "trust", thumb[:10], "--pki-dir", str(pki_dir)])
    assert trusted.exit_code == 0 and trusted.stdout == f"trusted: {pki.trusted_dir}/{thumb}.der\n"
    pki.check_server(der, "opc.tcp://plc:4840")  # no error now

    rejected = runner.invoke(app, ["certs", "reject", thumb, "--pki-dir", str(pki_dir)])
    assert rejected.exit_code == 0
    assert rejected.stdout == f"rejected: {pki.rejected_dir}/{thumb}.der\n"

    wrong = runner.invoke(app, ["certs", "reject", "DEADBEEF", "--pki-dir", str(pki_dir)])
    assert wrong.exit_code == 1
    assert wrong.stderr == ("error: no trusted certificate has a thumbprint starting with "
                            f"DEADBEEF (in {pki.trusted_dir}; see 'smeltwatch collect certs "
                            "list')\n")
