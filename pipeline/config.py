"""Settings, read once from the environment.

Every setting has a documented default that runs the whole pipeline on one machine against the local
broker (``aftercare broker start``). Pointing Aftercare at a real cluster means setting
``KAFKA_BOOTSTRAP_SERVERS`` and, where the cluster needs them, the ``KAFKA_SECURITY_*`` /
``KAFKA_SASL_*`` / ``KAFKA_SSL_*`` variables, which are passed through to every Kafka client.

The table in :data:`VARIABLES` is the single list of what can be set; the README's configuration
section and ``aftercare config`` are printed from it.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.clock import AcceleratedClock, Clock, SystemClock
from pipeline.names import CUSTOMERS_TABLE, INPUT_ROLES, TopicRole
from pipeline.preferences.tokens import Signer, UnsubscribeLinks


class ConfigError(ValueError):
    """A setting has a value Aftercare cannot use. The message names the variable and the fix."""


@dataclass(frozen=True)
class Variable:
    name: str
    default: str
    doc: str


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "KAFKA_BOOTSTRAP_SERVERS",
        "",
        "Comma-separated host:port list of an existing cluster. Empty: use the local broker "
        "(127.0.0.1:AFTERCARE_BROKER_PORT), which `aftercare broker start` runs.",
    ),
    Variable("KAFKA_CLIENT_ID", "aftercare", "client.id prefix of every Kafka client."),
    Variable(
        "KAFKA_SECURITY_PROTOCOL",
        "PLAINTEXT",
        "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
    ),
    Variable(
        "KAFKA_SASL_MECHANISM", "", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with SASL_* protocols)."
    ),
    Variable("KAFKA_SASL_USERNAME", "", "SASL username."),
    Variable("KAFKA_SASL_PASSWORD", "", "SASL password (from the environment only, never a file)."),
    Variable("KAFKA_SSL_CAFILE", "", "PEM file of the CA that signed the brokers' certificates."),
    Variable("KAFKA_SSL_CERTFILE", "", "PEM client certificate, for mutual TLS."),
    Variable("KAFKA_SSL_KEYFILE", "", "PEM client key, for mutual TLS."),
    Variable("KAFKA_SSL_KEY_PASSWORD", "", "Password of the client key, if it has one."),
    Variable(
        "AFTERCARE_TOPIC_PREFIX",
        "",
        "Prepended to every default topic name (e.g. `shop1.` gives `shop1.purchases`).",
    ),
    *(
        Variable(
            f"AFTERCARE_TOPIC_{role.name}",
            "",
            f"Full name of the `{role.value}` topic, overriding prefix + default.",
        )
        for role in TopicRole
    ),
    Variable(
        "AFTERCARE_INPUT_PARTITIONS",
        "8",
        "Partitions of each input topic (purchases, shipments, app-usage, preferences) and of "
        "due-notices; they must be equal. The most worker processes that can share the load.",
    ),
    Variable(
        "AFTERCARE_OUTPUT_PARTITIONS",
        "8",
        "Partitions of dispatch, deliveries and dead-letters. The most sender processes that can "
        "share the load.",
    ),
    Variable(
        "AFTERCARE_REPLICATION_FACTOR",
        "1",
        "Replication factor of the topics `aftercare topics create` makes (3 on a real cluster).",
    ),
    Variable(
        "AFTERCARE_MAX_FUTURE_SECONDS",
        "86400",
        "An event whose occurred_at is further than this ahead of the clock is dead-lettered.",
    ),
    Variable(
        "AFTERCARE_HOME",
        "~/.cache/aftercare",
        "Where the local broker's jars, data and log live (outside any checkout).",
    ),
    Variable("AFTERCARE_BROKER_PORT", "9092", "Client port of the local broker, on 127.0.0.1."),
    Variable(
        "AFTERCARE_BROKER_CONTROLLER_PORT",
        "",
        "KRaft controller port of the local broker. Empty: the client port + 1.",
    ),
    Variable("AFTERCARE_BROKER_HEAP", "1g", "JVM heap (-Xmx) of the local broker."),
    Variable(
        "AFTERCARE_BROKER_NODES",
        "1",
        "Nodes of the local broker: 1, or a KRaft cluster of this many on 127.0.0.1 (node i on "
        "the client and controller ports + 2(i-1)); `aftercare broker start --brokers N` too.",
    ),
    Variable(
        "AFTERCARE_JOURNEYS_FILE",
        "",
        "The journeys file (YAML). Empty: the defaults shipped with Aftercare "
        "(pipeline/journeys/default-journeys.yaml).",
    ),
    Variable(
        "AFTERCARE_CLOCK_FACTOR",
        "1",
        "1 runs on real time. Above 1, an accelerated clock for demos, backfills and tests: "
        "simulated time passes this many times faster.",
    ),
    Variable(
        "AFTERCARE_CLOCK_START",
        "",
        "With an accelerated clock: the simulated instant (ISO 8601) at AFTERCARE_CLOCK_EPOCH. "
        "Empty: the real time at the epoch.",
    ),
    Variable(
        "AFTERCARE_CLOCK_EPOCH",
        "",
        "With an accelerated clock: the real Unix time (seconds) at which simulated time was "
        "AFTERCARE_CLOCK_START; give every process the same value so they agree. Empty: start.",
    ),
    Variable(
        "AFTERCARE_WORKER_ID",
        "",
        "The worker's consumer group and table namespace. Empty: <topic prefix>aftercare-worker. "
        "Every worker of one deployment uses the same id.",
    ),
    Variable(
        "AFTERCARE_STATE_DIR",
        "",
        "Where the worker keeps its RocksDB tables (a cache of the changelog topics). Empty: "
        "AFTERCARE_HOME/state/<worker id>.",
    ),
    Variable(
        "AFTERCARE_WORKER_PORT",
        "6066",
        "HTTP port of the worker's health endpoints (/health/live, /health/ready).",
    ),
    Variable("AFTERCARE_LOG_LEVEL", "info", "debug, info, warning or error."),
    Variable(
        "AFTERCARE_SENDERS_ID",
        "",
        "The senders' consumer group. Empty: <topic prefix>aftercare-senders.",
    ),
    Variable("AFTERCARE_SENDERS_PORT", "6067", "HTTP port of the senders' health endpoints."),
    Variable(
        "AFTERCARE_SENDER_MAX_ATTEMPTS",
        "6",
        "Provider calls per channel before falling back to the next channel.",
    ),
    Variable(
        "AFTERCARE_SENDER_MAX_SECONDS_PER_CHANNEL",
        "120",
        "Seconds, on the pipeline's clock (the one validity is measured on), spent retrying one "
        "channel before falling back to the next; while other channels remain, never more than "
        "half the touchpoint's remaining validity.",
    ),
    Variable(
        "AFTERCARE_SENDER_RATE_PER_SECOND",
        "50",
        "Sends per second per provider and sender process (a token bucket).",
    ),
    Variable(
        "AFTERCARE_SENDER_DEDUPE_HOURS",
        "96",
        "How far back in deliveries a sender looks, when it takes over a partition, for "
        "touchpoints that already ended.",
    ),
    Variable(
        "AFTERCARE_SESSION_TIMEOUT_SECONDS",
        "10",
        "How long the consumer group waits for a worker that stopped answering (killed, node "
        "lost) before giving its partitions to the others. The broker allows 6 to 1800.",
    ),
    Variable(
        "AFTERCARE_MAX_IDLE_MS",
        "100",
        "How long the worker holds the records of one partition number while one of its inputs "
        "has nothing buffered, so that what happened first is decided first even when it is "
        "produced a little later (as Kafka Streams' max.task.idle.ms). An input with records on "
        "the broker not yet fetched is waited for at least 500 ms; 0: only such inputs are "
        "waited for, and nothing produced later (lowest latency).",
    ),
    Variable(
        "AFTERCARE_STATE_CACHE_CUSTOMERS",
        "10000",
        "How many recently seen customers the worker keeps decoded in memory, so that their next "
        "event skips decoding the stored state (the stored bytes are still read and compared). "
        "Each costs about four times its stored size; 0 turns the cache off.",
    ),
    # -- channels: the defaults reach the local sandbox (`aftercare sandbox`), with its own
    # non-secret credentials; production sets the provider's URLs and secrets here.
    Variable("AFTERCARE_SMTP_HOST", "127.0.0.1", "SMTP server for email."),
    Variable("AFTERCARE_SMTP_PORT", "2525", "Its port (587 for STARTTLS, 465 for implicit TLS)."),
    Variable("AFTERCARE_SMTP_TLS", "none", "none, starttls or implicit."),
    Variable("AFTERCARE_SMTP_USERNAME", "", "SMTP AUTH user; empty: no AUTH."),
    Variable("AFTERCARE_SMTP_PASSWORD", "", "SMTP AUTH password."),
    Variable("AFTERCARE_SMTP_POOL_SIZE", "4", "Open SMTP connections per sender process."),
    Variable("AFTERCARE_EMAIL_FROM", "Aftercare <care@shop.example>", "From: of every email."),
    Variable(
        "AFTERCARE_UNSUBSCRIBE_URL",
        "http://127.0.0.1:6068",
        "Public base URL of the preferences service (`aftercare preferences-api`): engagement and "
        "marketing mail carries <this>/unsubscribe?token=... as its one-click unsubscribe link.",
    ),
    Variable(
        "AFTERCARE_UNSUBSCRIBE_DAYS",
        "90",
        "Days after the message was due that its unsubscribe link still works.",
    ),
    Variable(
        "AFTERCARE_PREFERENCES_KEY",
        "sandbox-preferences-key",
        "Secret that signs unsubscribe and preference links (the senders sign, the preferences "
        "service verifies: give both the same). Set a long random one in production.",
    ),
    Variable(
        "AFTERCARE_CUSTOMER_API_TOKEN",
        "",
        "Bearer token of the worker's /customers/<id> page (one customer's state and history, as "
        "`aftercare customer` shows it). Empty: the page is off.",
    ),
    Variable(
        "AFTERCARE_PREFERENCES_PORT",
        "6068",
        "HTTP port of the preferences service (unsubscribe pages, preferences API, health).",
    ),
    Variable("AFTERCARE_SMS_BASE_URL", "http://127.0.0.1:8025/twilio", "Twilio-shaped SMS API."),
    Variable("AFTERCARE_SMS_ACCOUNT_SID", "ACsandbox", "SMS account SID (Basic auth user)."),
    Variable("AFTERCARE_SMS_AUTH_TOKEN", "sandbox-token", "SMS auth token (Basic auth password)."),
    Variable("AFTERCARE_SMS_FROM", "+15005550006", "Sender number or messaging service."),
    Variable(
        "AFTERCARE_WHATSAPP_BASE_URL",
        "http://127.0.0.1:8025/whatsapp",
        "WhatsApp Cloud API-shaped endpoint.",
    ),
    Variable("AFTERCARE_WHATSAPP_PHONE_NUMBER_ID", "1000000001", "The sending phone number id."),
    Variable("AFTERCARE_WHATSAPP_TOKEN", "sandbox-whatsapp-token", "Bearer token."),
    Variable("AFTERCARE_PUSH_BASE_URL", "http://127.0.0.1:8025/fcm", "FCM v1-shaped push API."),
    Variable("AFTERCARE_PUSH_PROJECT_ID", "aftercare-sandbox", "The push project id."),
    Variable("AFTERCARE_PUSH_TOKEN", "sandbox-push-token", "OAuth bearer token for push."),
    Variable(
        "AFTERCARE_WEBHOOK_URL",
        "http://127.0.0.1:8025/webhook/support",
        "Where support hand-offs (and other webhook touchpoints) are POSTed.",
    ),
    Variable("AFTERCARE_WEBHOOK_SECRET", "sandbox-webhook-secret", "HMAC secret of the signature."),
    Variable("AFTERCARE_SANDBOX_HTTP_PORT", "8025", "The sandbox's provider APIs, on 127.0.0.1."),
    Variable("AFTERCARE_SANDBOX_SMTP_PORT", "2525", "The sandbox's SMTP server, on 127.0.0.1."),
    Variable(
        "AFTERCARE_SANDBOX_DB",
        "~/.cache/aftercare/sandbox/outbox.sqlite",
        "The sandbox's outbox: every message it accepted (SQLite).",
    ),
    Variable(
        "AFTERCARE_KAFKA_LIBS",
        "",
        "A folder of already fetched Kafka jars for the local broker, to skip the download.",
    ),
)

_DEFAULTS: dict[str, str] = {v.name: v.default for v in VARIABLES}

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    ssl_key_password: str = field(default="", repr=False)

    def ssl_context(self) -> ssl.SSLContext | None:
        if "SSL" not in self.protocol:
            return None
        context = ssl.create_default_context(cafile=self.ssl_cafile or None)
        if self.ssl_certfile:
            context.load_cert_chain(
                self.ssl_certfile,
                self.ssl_keyfile or None,
                self.ssl_key_password or None,
            )
        return context


@dataclass(frozen=True)
class LocalBroker:
    """The single-node KRaft broker that `aftercare broker` runs for development and tests."""

    home: Path
    port: int
    controller_port: int
    heap: str
    # A cluster of this many KRaft nodes (each broker and controller) instead of one. Node i
    # (from 1) listens on ``port + 2(i-1)`` and ``controller_port + 2(i-1)`` unless
    # ``node_ports`` gives every node's (client, controller) pair.
    nodes: int = 1
    node_ports: tuple[tuple[int, int], ...] = ()

    def ports_of(self, node: int) -> tuple[int, int]:
        """The (client, controller) ports of node ``node`` (1-based)."""
        if self.node_ports:
            return self.node_ports[node - 1]
        return self.port + 2 * (node - 1), self.controller_port + 2 * (node - 1)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.ports_of(i)[0]}" for i in range(1, self.nodes + 1))

    def with_nodes(self, nodes: int) -> LocalBroker:
        return replace(self, nodes=nodes)


@dataclass(frozen=True)
class Settings:
    bootstrap_servers: str
    uses_local_broker: bool
    client_id: str
    security: KafkaSecurity
    topic_prefix: str
    topics: Mapping[TopicRole, str]
    input_partitions: int
    output_partitions: int
    replication_factor: int
    max_future_seconds: int
    local_broker: LocalBroker
    journeys_file: str
    clock_factor: float
    clock_start: datetime | None
    clock_epoch: float | None
    worker_id: str
    state_dir: Path
    worker_port: int
    log_level: str
    session_timeout_seconds: float
    max_idle_seconds: float
    state_cache_customers: int
    channels: ChannelSettings
    senders_id: str
    senders_port: int
    sender_max_attempts: int
    sender_max_seconds_per_channel: float
    sender_rate_per_second: float
    sender_dedupe_hours: float
    preferences_port: int
    preferences_key: str = field(repr=False)
    unsubscribe_days: int
    customer_api_token: str = field(repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str) -> str:
            return env.get(name, "").strip() or _DEFAULTS[name]

        broker_port = _port(get, "AFTERCARE_BROKER_PORT")
        controller = get("AFTERCARE_BROKER_CONTROLLER_PORT")
        controller_port = (
            _port(get, "AFTERCARE_BROKER_CONTROLLER_PORT") if controller else broker_port + 1
        )
        if controller_port == broker_port:
            raise ConfigError(
                "AFTERCARE_BROKER_CONTROLLER_PORT must differ from AFTERCARE_BROKER_PORT "
                f"(both are {broker_port})."
            )
        local = LocalBroker(
            home=Path(get("AFTERCARE_HOME")).expanduser(),
            port=broker_port,
            controller_port=controller_port,
            heap=get("AFTERCARE_BROKER_HEAP"),
            nodes=_positive(get, "AFTERCARE_BROKER_NODES"),
        )
        bootstrap = get("KAFKA_BOOTSTRAP_SERVERS")

        protocol = get("KAFKA_SECURITY_PROTOCOL").upper()
        if protocol not in SECURITY_PROTOCOLS:
            raise ConfigError(
                f"KAFKA_SECURITY_PROTOCOL={protocol!r} is not one of "
                f"{', '.join(SECURITY_PROTOCOLS)}."
            )
        mechanism = get("KAFKA_SASL_MECHANISM").upper()
        if protocol.startswith("SASL"):
            if mechanism not in SASL_MECHANISMS:
                raise ConfigError(
                    f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_MECHANISM set to one of "
                    f"{', '.join(SASL_MECHANISMS)} (got {mechanism or 'nothing'})."
                )
            if not get("KAFKA_SASL_USERNAME"):
                raise ConfigError(
                    f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and "
                    "KAFKA_SASL_PASSWORD."
                )
        security = KafkaSecurity(
            protocol=protocol,
            sasl_mechanism=mechanism,
            sasl_username=get("KAFKA_SASL_USERNAME"),
            sasl_password=get("KAFKA_SASL_PASSWORD"),
            ssl_cafile=get("KAFKA_SSL_CAFILE"),
            ssl_certfile=get("KAFKA_SSL_CERTFILE"),
            ssl_keyfile=get("KAFKA_SSL_KEYFILE"),
            ssl_key_password=get("KAFKA_SSL_KEY_PASSWORD"),
        )

        prefix = get("AFTERCARE_TOPIC_PREFIX")
        topics = {
            role: get(f"AFTERCARE_TOPIC_{role.name}") or f"{prefix}{role.value}"
            for role in TopicRole
        }
        names = list(topics.values())
        if len(set(names)) != len(names):
            raise ConfigError(f"Two topic roles share one topic name: {sorted(names)}.")

        factor = _number(get, "AFTERCARE_CLOCK_FACTOR")
        start_text = get("AFTERCARE_CLOCK_START")
        try:
            clock_start = datetime.fromisoformat(start_text) if start_text else None
        except ValueError:
            raise ConfigError(
                f"AFTERCARE_CLOCK_START={start_text!r} is not an ISO 8601 instant "
                "(like 2026-03-02T09:30:00Z)."
            ) from None
        if clock_start is not None and clock_start.tzinfo is None:
            raise ConfigError(f"AFTERCARE_CLOCK_START={start_text!r} needs a time zone (add Z).")
        epoch_text = get("AFTERCARE_CLOCK_EPOCH")
        worker_id = get("AFTERCARE_WORKER_ID") or f"{prefix}aftercare-worker"
        state_dir = get("AFTERCARE_STATE_DIR")
        log_level = get("AFTERCARE_LOG_LEVEL").lower()
        if log_level not in ("debug", "info", "warning", "error"):
            raise ConfigError(
                f"AFTERCARE_LOG_LEVEL={log_level!r} is not debug, info, warning or error."
            )
        return cls(
            bootstrap_servers=bootstrap or local.bootstrap,
            uses_local_broker=not bootstrap,
            client_id=get("KAFKA_CLIENT_ID"),
            security=security,
            topic_prefix=prefix,
            topics=topics,
            input_partitions=_positive(get, "AFTERCARE_INPUT_PARTITIONS"),
            output_partitions=_positive(get, "AFTERCARE_OUTPUT_PARTITIONS"),
            replication_factor=_positive(get, "AFTERCARE_REPLICATION_FACTOR"),
            max_future_seconds=_positive(get, "AFTERCARE_MAX_FUTURE_SECONDS"),
            local_broker=local,
            journeys_file=get("AFTERCARE_JOURNEYS_FILE"),
            clock_factor=factor,
            clock_start=clock_start,
            clock_epoch=_number(get, "AFTERCARE_CLOCK_EPOCH") if epoch_text else None,
            worker_id=worker_id,
            state_dir=(
                Path(state_dir).expanduser() if state_dir else local.home / "state" / worker_id
            ),
            worker_port=_port(get, "AFTERCARE_WORKER_PORT"),
            log_level=log_level,
            session_timeout_seconds=_number(get, "AFTERCARE_SESSION_TIMEOUT_SECONDS"),
            max_idle_seconds=_count(get, "AFTERCARE_MAX_IDLE_MS") / 1000,
            state_cache_customers=_count(get, "AFTERCARE_STATE_CACHE_CUSTOMERS"),
            channels=_channel_settings(get),
            senders_id=get("AFTERCARE_SENDERS_ID") or f"{prefix}aftercare-senders",
            senders_port=_port(get, "AFTERCARE_SENDERS_PORT"),
            sender_max_attempts=_positive(get, "AFTERCARE_SENDER_MAX_ATTEMPTS"),
            sender_max_seconds_per_channel=_number(get, "AFTERCARE_SENDER_MAX_SECONDS_PER_CHANNEL"),
            sender_rate_per_second=_number(get, "AFTERCARE_SENDER_RATE_PER_SECOND"),
            sender_dedupe_hours=_number(get, "AFTERCARE_SENDER_DEDUPE_HOURS"),
            preferences_port=_port(get, "AFTERCARE_PREFERENCES_PORT"),
            preferences_key=get("AFTERCARE_PREFERENCES_KEY"),
            unsubscribe_days=_positive(get, "AFTERCARE_UNSUBSCRIBE_DAYS"),
            customer_api_token=get("AFTERCARE_CUSTOMER_API_TOKEN"),
        )

    def signer(self) -> Signer:
        """What signs and verifies preference links; refuses a key anyone could know."""
        key = self.preferences_key
        if key == _DEFAULTS["AFTERCARE_PREFERENCES_KEY"] and not self.uses_local_broker:
            raise ConfigError(
                "AFTERCARE_PREFERENCES_KEY is the sandbox's, which anyone can read, and this is a "
                f"real cluster ({self.bootstrap_servers}); set a long random secret, the same for "
                "the senders and the preferences service (python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))')."
            )
        if len(key) < 16:
            raise ConfigError(
                f"AFTERCARE_PREFERENCES_KEY has {len(key)} characters; use at least 16 (random)."
            )
        return Signer(key)

    def unsubscribe_links(self) -> UnsubscribeLinks:
        """How the senders build each email's signed one-click unsubscribe link."""
        return UnsubscribeLinks(
            self.channels.unsubscribe_url, self.signer(), timedelta(days=self.unsubscribe_days)
        )

    def clock(self) -> Clock:
        """The clock every component of this process runs on."""
        if self.clock_factor == 1 and self.clock_start is None:
            return SystemClock()
        return AcceleratedClock(
            self.clock_start or datetime.now(UTC), self.clock_factor, self.clock_epoch
        )

    def topic(self, role: TopicRole) -> str:
        return self.topics[role]

    @property
    def changelog_topic(self) -> str:
        """The worker's customers table changelog, named as Faust names it."""
        return f"{self.worker_id}-{CUSTOMERS_TABLE}-changelog"

    @property
    def input_topics(self) -> tuple[str, ...]:
        return tuple(self.topics[role] for role in INPUT_ROLES)

    def role_of(self, topic: str) -> TopicRole:
        for role, name in self.topics.items():
            if name == topic:
                return role
        raise KeyError(f"{topic!r} is not one of Aftercare's topics")

    def kafka_client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments every aiokafka client (producer, consumer, admin) is built with."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security.protocol,
        }
        context = self.security.ssl_context()
        if context is not None:
            kwargs["ssl_context"] = context
        if self.security.protocol.startswith("SASL"):
            kwargs["sasl_mechanism"] = self.security.sasl_mechanism
            kwargs["sasl_plain_username"] = self.security.sasl_username
            kwargs["sasl_plain_password"] = self.security.sasl_password
        return kwargs


def _positive(get: Any, name: str) -> int:
    return _integer(get, name, 1, "a positive integer")


def _count(get: Any, name: str) -> int:
    return _integer(get, name, 0, "a whole number (0 or more)")


def _integer(get: Any, name: str, least: int, kind: str) -> int:
    raw = get(name)
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {kind}, got {raw!r}.") from None
    if value < least:
        raise ConfigError(f"{name} must be {kind}, got {raw!r}.")
    return value


@dataclass(frozen=True)
class ChannelSettings:
    smtp_host: str
    smtp_port: int
    smtp_tls: str
    smtp_username: str
    smtp_password: str = field(repr=False)
    smtp_pool_size: int
    email_from: str
    unsubscribe_url: str
    sms_base_url: str
    sms_account_sid: str
    sms_auth_token: str = field(repr=False)
    sms_from: str
    whatsapp_base_url: str
    whatsapp_phone_number_id: str
    whatsapp_token: str = field(repr=False)
    push_base_url: str
    push_project_id: str
    push_token: str = field(repr=False)
    webhook_url: str
    webhook_secret: str = field(repr=False)


def _channel_settings(get: Any) -> ChannelSettings:
    tls = get("AFTERCARE_SMTP_TLS").lower()
    if tls not in ("none", "starttls", "implicit"):
        raise ConfigError(f"AFTERCARE_SMTP_TLS={tls!r} is not none, starttls or implicit.")
    unsubscribe = get("AFTERCARE_UNSUBSCRIBE_URL")
    if "{" in unsubscribe:
        raise ConfigError(
            f"AFTERCARE_UNSUBSCRIBE_URL={unsubscribe!r} has placeholders; it is now the public "
            "base URL of `aftercare preferences-api` (like https://preferences.shop.example), and "
            "each link is <base>/unsubscribe?token=..."
        )
    for name in ("UNSUBSCRIBE_URL", "SMS_BASE_URL", "WHATSAPP_BASE_URL", "PUSH_BASE_URL",
                 "WEBHOOK_URL"):  # fmt: skip
        url = get(f"AFTERCARE_{name}")
        if not url.startswith(("https://", "http://")):
            raise ConfigError(f"AFTERCARE_{name}={url!r} is not an http(s) URL.")
    return ChannelSettings(
        smtp_host=get("AFTERCARE_SMTP_HOST"),
        smtp_port=_port(get, "AFTERCARE_SMTP_PORT"),
        smtp_tls=tls,
        smtp_username=get("AFTERCARE_SMTP_USERNAME"),
        smtp_password=get("AFTERCARE_SMTP_PASSWORD"),
        smtp_pool_size=_positive(get, "AFTERCARE_SMTP_POOL_SIZE"),
        email_from=get("AFTERCARE_EMAIL_FROM"),
        unsubscribe_url=get("AFTERCARE_UNSUBSCRIBE_URL"),
        sms_base_url=get("AFTERCARE_SMS_BASE_URL"),
        sms_account_sid=get("AFTERCARE_SMS_ACCOUNT_SID"),
        sms_auth_token=get("AFTERCARE_SMS_AUTH_TOKEN"),
        sms_from=get("AFTERCARE_SMS_FROM"),
        whatsapp_base_url=get("AFTERCARE_WHATSAPP_BASE_URL"),
        whatsapp_phone_number_id=get("AFTERCARE_WHATSAPP_PHONE_NUMBER_ID"),
        whatsapp_token=get("AFTERCARE_WHATSAPP_TOKEN"),
        push_base_url=get("AFTERCARE_PUSH_BASE_URL"),
        push_project_id=get("AFTERCARE_PUSH_PROJECT_ID"),
        push_token=get("AFTERCARE_PUSH_TOKEN"),
        webhook_url=get("AFTERCARE_WEBHOOK_URL"),
        webhook_secret=get("AFTERCARE_WEBHOOK_SECRET"),
    )


def _number(get: Any, name: str) -> float:
    raw = get(name)
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a positive number, got {raw!r}.") from None
    if not value > 0:
        raise ConfigError(f"{name} must be a positive number, got {raw!r}.")
    return value


def _port(get: Any, name: str) -> int:
    value = _positive(get, name)
    if value > 65535:
        raise ConfigError(f"{name} must be a TCP port (1-65535), got {value}.")
    return value
