"""OPC UA security and chaos of the simulated PLCs, seen by a real asyncua client."""

from __future__ import annotations

import asyncio
import itertools
import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

from collector.security.certificates import ensure_certificate
from simulators.opcua import OpcUaChaos, OpcUaSecurity, QualityCycle
from simulators.runner import RunOptions, ScenarioRun
from tests.simulators.conftest import free_port, make_plant, short_scenario

SOURCE = "plc-refining"
CLIENT_URI = "urn:smeltwatch:test-client"
SecurePlc = tuple[str, Path, tuple[Path, Path]]  # endpoint, server certificate, client cert/key


def client_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    return ensure_certificate(directory, name, CLIENT_URI, "127.0.0.1")


async def secure_client(url: str, cert: tuple[Path, Path], server_cert: Path,
                        user: tuple[str, str] | None) -> Client:
    client = Client(url, timeout=10)
    client.application_uri = CLIENT_URI
    if user is not None:
        client.set_user(user[0])
        client.set_password(user[1])
    await client.set_security(SecurityPolicyBasic256Sha256, str(cert[0]), str(cert[1]),
                              server_certificate=str(server_cert),
                              mode=ua.MessageSecurityMode.SignAndEncrypt)
    return client


@pytest.fixture
async def secure_plc(tmp_path: Path) -> AsyncIterator[SecurePlc]:
    """A PLC that offers only Basic256Sha256 SignAndEncrypt, wants a user name and password,
    and trusts one client certificate."""
    trusted = client_certificate(tmp_path / "client", "trusted-client")
    trust_dir = tmp_path / "trusted"
    trust_dir.mkdir()
    shutil.copy(trusted[0], trust_dir)
    security = OpcUaSecurity(policies=("sign_encrypt",), cert_dir=tmp_path / "server",
                             users=(("operator", "s3cret"),), trusted_clients=trust_dir)
    plant, _ = make_plant()
    port = free_port()
    run = ScenarioRun(plant, short_scenario(hours=1), RunOptions(
        speed=0, only={SOURCE}, opcua_ports={SOURCE: port}, security=security))
    await run.start()
    await run.play()
    try:
        server_cert = tmp_path / "server" / f"urn_smeltwatch_sim_{SOURCE}.der"
        yield f"opc.tcp://127.0.0.1:{port}", server_cert, trusted
    finally:
        await run.close()


async def test_sign_and_encrypt_with_password_reads_the_plc(
        secure_plc: SecurePlc) -> None:
    url, server_cert, trusted = secure_plc
    client = await secure_client(url, trusted, server_cert, ("operator", "s3cret"))
    async with client:
        ns = await client.get_namespace_index("urn:smeltwatch:yulin-1")
        melt = client.get_node(ua.NodeId("refining/refining-1.refining_melt_temp_c", ns))
        value = await melt.read_data_value()
        assert 640 < value.Value.Value < 740
        endpoints = await client.get_endpoints()
    modes = {(e.SecurityPolicyUri.rsplit("#", 1)[1], e.SecurityMode) for e in endpoints}
    assert modes == {("Basic256Sha256", ua.MessageSecurityMode.SignAndEncrypt)}
    tokens = {t.TokenType for e in endpoints for t in e.UserIdentityTokens}
    assert tokens == {ua.UserTokenType.UserName}  # no anonymous access


async def test_wrong_password_is_refused(
        secure_plc: SecurePlc) -> None:
    url, server_cert, trusted = secure_plc
    client = await secure_client(url, trusted, server_cert, ("operator", "guess"))
    with pytest.raises(ua.UaStatusCodeError, match=r"BadUserAccessDenied|BadIdentityToken"):
        await client.connect()
    await client.disconnect()


async def test_untrusted_client_certificate_is_refused(
        secure_plc: SecurePlc, tmp_path: Path) -> None:
    url, server_cert, _ = secure_plc
    stranger = client_certificate(tmp_path / "stranger", "stranger")
    client = await secure_client(url, stranger, server_cert, ("operator", "s3cret"))
    with pytest.raises(ua.UaStatusCodeError, match=r"BadCertificate|BadSecurityChecksFailed"):
        await client.connect()
    await client.disconnect()


async def test_no_security_is_refused(
        secure_plc: SecurePlc) -> None:
    url, _, _ = secure_plc
    client = Client(url, timeout=10)
    client.set_user("operator")
    client.set_password("s3cret")
    with pytest.raises(ua.UaError):
        await client.connect()
    await client.disconnect()


async def test_chaos_drops_client_connections() -> None:
    plant, _ = make_plant()
    port = free_port()
    run = ScenarioRun(plant, short_scenario(hours=1), RunOptions(
        speed=0, only={SOURCE}, opcua_ports={SOURCE: port},
        opcua_chaos=OpcUaChaos(drop_connections_s=0.5)))
    await run.start()
    lost = False
    try:
        client = Client(f"opc.tcp://127.0.0.1:{port}", timeout=5)
        await client.connect()
        try:
            await run.play()
            for _ in range(100):  # the chaos task cuts every connection every 0.5 s
                try:
                    await client.nodes.server_state.read_value()
                except (TimeoutError, ConnectionError, ua.UaError):
                    lost = True
                    break
                await asyncio.sleep(0.1)
        finally:
            await client.disconnect()
    finally:
        await run.close()
    assert lost
    assert run.servers[0].device.stats.dropped_connections >= 1


async def test_quality_cycling_goes_good_uncertain_bad_on_its_period() -> None:
    plant, _ = make_plant()
    port = free_port()
    scenario = short_scenario(hours=2)
    run = ScenarioRun(plant, scenario, RunOptions(
        speed=0, only={SOURCE}, opcua_ports={SOURCE: port},
        quality_cycle=QualityCycle(pct=100, period_s=1200)))
    await run.start()
    try:
        await run.play()
        async with Client(f"opc.tcp://127.0.0.1:{port}", timeout=10) as reader:
            ns = await reader.get_namespace_index("urn:smeltwatch:yulin-1")
            melt = reader.get_node(ua.NodeId("refining/refining-1.refining_melt_temp_c", ns))
            history = await melt.read_raw_history(scenario.start - timedelta(minutes=1),
                                                  scenario.start + timedelta(hours=2))
    finally:
        await run.close()
    # 20 simulated minutes each: Good, Uncertain, Bad, Good, Uncertain, Bad, Good
    statuses = [((dv.SourceTimestamp - scenario.start).total_seconds() // 60,
                 dv.StatusCode.value) for dv in history[1:]]
    changes = [statuses[0]] + [b for a, b in itertools.pairwise(statuses) if a[1] != b[1]]
    uncertain, bad = ua.StatusCodes.UncertainSensorNotAccurate, ua.StatusCodes.BadSensorFailure
    assert changes == [(1, 0), (20, uncertain), (40, bad), (60, 0), (80, uncertain), (100, bad),
                       (120, 0)]
    assert all(dv.Value.Value is None for dv in history[1:] if dv.StatusCode.value == bad)
    assert all(640 < dv.Value.Value < 740 for dv in history[1:] if dv.StatusCode.value != bad)
