"""Settings from the environment: defaults, overrides and clear refusals."""

from __future__ import annotations

import pytest

from pipeline.config import HIDDEN, VARIABLES, ConfigError, Environment, Settings, listing
from pipeline.names import TopicRole


def test_defaults_use_the_local_broker_and_the_design_topic_names() -> None:
    settings = Settings.from_env({})
    assert settings.uses_local_broker
    assert settings.bootstrap_servers == "127.0.0.1:9092"
    assert settings.local_broker.controller_port == 9093
    assert {role: settings.topic(role) for role in TopicRole} == {r: r.value for r in TopicRole}
    assert settings.input_partitions == settings.output_partitions == 8
    assert settings.kafka_client_kwargs() == {
        "bootstrap_servers": "127.0.0.1:9092",
        "security_protocol": "PLAINTEXT",
    }


def test_an_existing_cluster_with_sasl_over_tls_is_passed_through() -> None:
    settings = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "k1:9093,k2:9093",
            "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": "aftercare",
            "KAFKA_SASL_PASSWORD": "s3cret",
        }
    )
    kwargs = settings.kafka_client_kwargs()
    assert not settings.uses_local_broker
    assert kwargs["bootstrap_servers"] == "k1:9093,k2:9093"
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_password"] == "s3cret"
    assert kwargs["ssl_context"] is not None
    assert "s3cret" not in repr(settings)


def test_topic_names_take_a_prefix_and_per_topic_overrides() -> None:
    settings = Settings.from_env(
        {"AFTERCARE_TOPIC_PREFIX": "shop1.", "AFTERCARE_TOPIC_DEAD_LETTERS": "ops.dlq"}
    )
    assert settings.topic(TopicRole.PURCHASES) == "shop1.purchases"
    assert settings.topic(TopicRole.DEAD_LETTERS) == "ops.dlq"
    assert settings.role_of("shop1.app-usage") is TopicRole.APP_USAGE


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"AFTERCARE_INPUT_PARTITIONS": "many"}, "AFTERCARE_INPUT_PARTITIONS must be a positive"),
        ({"AFTERCARE_REPLICATION_FACTOR": "0"}, "AFTERCARE_REPLICATION_FACTOR must be a positive"),
        ({"AFTERCARE_BROKER_PORT": "70000"}, "must be a TCP port"),
        ({"AFTERCARE_BROKER_CONTROLLER_PORT": "9092"}, "must differ"),
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "must be one of PLAINTEXT, SSL, .*got 'TLS'"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "host:port"}, "'port' in 'host:port' is not a TCP port"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "localhost"}, "'localhost' has no port"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "k1:9092,,k2:9092"}, "KAFKA_BOOTSTRAP_SERVERS"),
        ({"AFTERCARE_SESSION_TIMEOUT_SECONDS": "3"}, "from 6 to 1800"),
        ({"AFTERCARE_SESSION_TIMEOUT_SECONDS": "1801"}, "from 6 to 1800"),
        ({"AFTERCARE_BIND_ADDRESS": "nowhere!"}, "is not an address to listen on"),
        ({"AFTERCARE_CLOCK_START": "yesterday"}, "is not an ISO 8601 instant"),
        ({"AFTERCARE_CLOCK_START": "2026-03-02T09:30:00"}, "needs a time zone"),
        ({"AFTERCARE_LOG_FORMAT": "xml"}, "must be one of text or json"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "needs KAFKA_SASL_MECHANISM"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "PLAIN"},
            "needs KAFKA_SASL_USERNAME",
        ),
        ({"AFTERCARE_TOPIC_SHIPMENTS": "purchases"}, "share one topic name"),
    ],
)
def test_unusable_settings_are_refused_with_the_variable_named(
    env: dict[str, str], words: str
) -> None:
    with pytest.raises(ConfigError, match=words) as refused:
        Settings.from_env(env)
    message = str(refused.value)
    assert "\n" not in message, "one line, for a terminal or a crash-looping pod's log"
    assert any(name in message for name in env)


def test_good_broker_lists_and_bind_addresses_are_taken_as_given() -> None:
    settings = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "kafka-1.internal:9092, 10.0.0.7:9094,[::1]:9092",
            "AFTERCARE_BIND_ADDRESS": "0.0.0.0",
            "AFTERCARE_INSTANCE_ID": "aftercare-worker-2",
        }
    )
    assert settings.bootstrap_servers == "kafka-1.internal:9092,10.0.0.7:9094,[::1]:9092"
    assert settings.bind_address == "0.0.0.0"
    assert settings.instance_id == "aftercare-worker-2"
    assert Settings.from_env({}).bind_address == "127.0.0.1"  # this machine only, by default


SECRETS = {
    "KAFKA_SASL_PASSWORD": "sasl-pass-0001",
    "KAFKA_SSL_KEY_PASSWORD": "key-pass-0002",
    "AFTERCARE_SMTP_PASSWORD": "smtp-pass-0003",
    "AFTERCARE_PREFERENCES_KEY": "preferences-key-0004-long-enough",
    "AFTERCARE_CUSTOMER_API_TOKEN": "customer-token-0005",
    "AFTERCARE_SMS_AUTH_TOKEN": "sms-token-0006",
    "AFTERCARE_WHATSAPP_TOKEN": "whatsapp-token-0007",
    "AFTERCARE_PUSH_TOKEN": "push-token-0008",
    "AFTERCARE_WEBHOOK_SECRET": "webhook-secret-0009",
}


def test_every_secret_is_a_secret_type_and_hidden_wherever_it_is_shown() -> None:
    assert {v.name for v in VARIABLES if v.secret} == set(SECRETS)
    environ = {
        **SECRETS,
        "KAFKA_BOOTSTRAP_SERVERS": "k1:9093",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "PLAIN",
        "KAFKA_SASL_USERNAME": "aftercare",
    }
    env = Environment.read(environ)
    settings = Settings.from_environment(env)
    shown = "\n".join(listing(env)) + repr(env) + repr(settings) + str(settings)
    for name, value in SECRETS.items():
        assert value not in shown, name
        assert f"{name}={HIDDEN}" in listing(env)
    # The sandbox's own defaults are secrets too: hidden, marked as the default.
    defaults = listing(Environment.read({}))
    assert f"AFTERCARE_SMS_AUTH_TOKEN={HIDDEN} (default)" in defaults
    assert "KAFKA_SASL_PASSWORD=(empty, the default)" in defaults
    # ...and still reach the code that needs them.
    assert settings.kafka_client_kwargs()["sasl_plain_password"] == "sasl-pass-0001"


def test_every_variable_is_documented_once() -> None:
    names = [variable.name for variable in VARIABLES]
    assert len(names) == len(set(names))
    assert all(variable.doc.strip() for variable in VARIABLES)


def test_the_sandbox_signing_key_is_refused_on_a_real_cluster() -> None:
    Settings.from_env({}).signer()  # the local broker: the sandbox's key is fine
    cluster = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "kafka-1.example:9092"})
    with pytest.raises(ConfigError, match="AFTERCARE_PREFERENCES_KEY is the sandbox's"):
        cluster.signer()
    with pytest.raises(ConfigError, match="at least 16"):
        Settings.from_env({"AFTERCARE_PREFERENCES_KEY": "short"}).signer()
    Settings.from_env(
        {"KAFKA_BOOTSTRAP_SERVERS": "kafka-1.example:9092", "AFTERCARE_PREFERENCES_KEY": "x" * 32}
    ).signer()
