"""The MQTT publisher against real brokers: TLS, passwords and client certificates on a
private Mosquitto (tests/mqtt_broker.py), clear errors when the broker refuses us, and a
flaky network (dropped connections) on the local stack's Mosquitto."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from collector.contracts.plant import MqttSource
from collector.security.mqtt import MqttConnection
from simulators.clock import VirtualClock
from simulators.model import PlantSim
from simulators.mqtt_publisher import MqttChaos, MqttFeed, MqttPublisher, PublishError
from simulators.runner import RunOptions, ScenarioRun
from tests import mqtt_broker
from tests.mqtt_broker import CertificateAuthority, MosquittoBroker
from tests.mqtt_clients import Received, Subscriber
from tests.simulators.conftest import make_plant, short_scenario

PUBLISHER, PUBLISHER_PASSWORD = "meter-gateway", "retort-8Pa"
READER, READER_PASSWORD = "ems", "tce-per-t"


def every_seq_up_to(last: int) -> Callable[[list[Received]], bool]:
    return lambda received: set(range(1, last + 1)) <= {r.json()["seq"] for r in received}


@pytest.fixture(scope="module")
def secure_broker() -> Iterator[MosquittoBroker]:
    with MosquittoBroker(tls=True, users={PUBLISHER: PUBLISHER_PASSWORD,
                                          READER: READER_PASSWORD}) as broker:
        yield broker


def publisher_for(broker: MosquittoBroker, password: str = PUBLISHER_PASSWORD,
                  ca_file: Path | None = None) -> MqttPublisher:
    return MqttPublisher(MqttConnection(broker.url, PUBLISHER, password,
                                        ca_file=ca_file or broker.ca_file),
                         f"smeltwatch-test-{password}")


def test_meter_feed_over_tls_with_a_password_reaches_a_tls_subscriber(
        secure_broker: MosquittoBroker) -> None:
    plant, site = make_plant()
    source = next(s for s in plant.sources if isinstance(s, MqttSource))
    scenario = short_scenario(hours=2)
    publisher = publisher_for(secure_broker)
    sub = Subscriber(secure_broker.url, f"smelter/v1/{site}/#", username=READER,
                     password=READER_PASSWORD, ca_file=secure_broker.ca_file)
    try:
        publisher.connect()
        feed = MqttFeed(plant, source, publisher, VirtualClock(scenario.start, 0))
        sent = sum(feed.publish(frame) for frame in PlantSim(plant, scenario).frames())
        publisher.close()
        sub.wait_until(every_seq_up_to(sent))
    finally:
        sub.close()
    assert sent > 100
    assert sorted(sub.seqs()) == list(range(1, sent + 1))  # each exactly once


def test_wrong_password_is_a_clear_error_at_connect(secure_broker: MosquittoBroker) -> None:
    publisher = publisher_for(secure_broker, password="not-the-password")
    with pytest.raises(PublishError, match=r"the MQTT broker at 127\.0\.0\.1:\d+ refused the "
                                           r"connection: .*check the MQTT user name and password"):
        publisher.connect()


def test_broker_certificate_from_an_untrusted_ca_is_a_clear_error_at_connect(
        secure_broker: MosquittoBroker, tmp_path: Path) -> None:
    stranger = CertificateAuthority(tmp_path, "some other CA")
    publisher = publisher_for(secure_broker, ca_file=stranger.cert_file)
    with pytest.raises(PublishError, match=r"TLS handshake with 127\.0\.0\.1:\d+ failed: "
                                           r"certificate verify failed"):
        publisher.connect()


def test_listener_that_never_answers_is_a_clear_error_at_connect() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts TCP, never speaks MQTT
        publisher = MqttPublisher(f"mqtt://127.0.0.1:{silent.getsockname()[1]}", "patient")
        with pytest.raises(PublishError, match=r"the MQTT broker at 127\.0\.0\.1:\d+ sent no "
                                               r"CONNACK within 1 s"):
            publisher.connect(timeout_s=1)


def test_broker_certificate_for_another_host_is_a_clear_error_at_connect() -> None:
    with MosquittoBroker(tls=True, server_names=("broker.plant.example",)) as broker:
        publisher = MqttPublisher(MqttConnection(broker.url, ca_file=broker.ca_file), "host")
        with pytest.raises(PublishError, match=r"TLS handshake with 127\.0\.0\.1:\d+ failed: "
                                               r"certificate verify failed: .*mismatch"):
            publisher.connect()


def test_broker_requiring_client_certificates_takes_ours_and_refuses_none() -> None:
    with MosquittoBroker(tls=True, require_client_certificate=True) as broker:
        ours = broker.issue_client_certificate("weighbridge-01")
        publisher = MqttPublisher(MqttConnection(broker.url, ca_file=broker.ca_file,
                                                 client_cert=ours.cert_file,
                                                 client_key=ours.key_file), "weighbridge-01")
        publisher.connect()
        publisher.publish("smelter/v1/test/ping", b"{}")
        publisher.close()
        anonymous = MqttPublisher(MqttConnection(broker.url, ca_file=broker.ca_file), "nobody")
        with pytest.raises(PublishError, match=r"127\.0\.0\.1:\d+.*certificate"):
            anonymous.connect(timeout_s=5)


def test_password_file_written_without_mosquitto_passwd_is_accepted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mqtt_broker, "MOSQUITTO_PASSWD", "/nonexistent/mosquitto_passwd")
    with MosquittoBroker(users={PUBLISHER: PUBLISHER_PASSWORD}) as broker:
        publisher = MqttPublisher(MqttConnection(broker.url, PUBLISHER, PUBLISHER_PASSWORD),
                                  "pbkdf2")
        publisher.connect()
        publisher.close()
        impostor = MqttPublisher(MqttConnection(broker.url, PUBLISHER, "guess"), "impostor")
        with pytest.raises(PublishError, match="refused the connection"):
            impostor.connect()


def test_publisher_rides_out_a_broker_restart() -> None:
    with MosquittoBroker() as broker:
        publisher = MqttPublisher(broker.url, "rides-out-restart")
        publisher.connect()
        try:
            publisher.publish("smelter/v1/test/before", b"{}")
            publisher.flush()
            broker.stop(abrupt=True)
            for _ in range(50):  # queued while the broker is down
                publisher.publish("smelter/v1/test/during", b"{}")
            broker.start()
            publisher.flush(timeout_s=60)
        finally:
            publisher.close()
    assert publisher.reconnects >= 1


async def test_dropped_connections_duplicate_but_never_lose_messages() -> None:
    plant, site = make_plant()
    sub = Subscriber("mqtt://127.0.0.1:1883", f"smelter/v1/{site}/#")
    run = ScenarioRun(plant, short_scenario(hours=6), RunOptions(
        speed=0, only={"plant-mqtt"}, chaos=MqttChaos(drop_connection_every=40, seed=3)))
    try:
        await run.start()
        stats = await run.play()
        publisher = run.feeds[0].publisher
        sub.wait_until(every_seq_up_to(stats.mqtt_messages))
    finally:
        await run.close()
        sub.close()
    assert stats.mqtt_messages > 200
    assert publisher.connection_drops >= 1 and publisher.reconnects >= 1
    seqs = sub.seqs()
    assert set(seqs) == set(range(1, stats.mqtt_messages + 1))  # nothing lost
