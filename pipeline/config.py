"""Settings, declared once and read once from the environment.

:class:`Environment` declares every variable Aftercare reads: its name, type, default, range and
what it does. Parsing (pydantic-settings), ``aftercare config`` and the README's configuration
table all come from that one declaration. :class:`Settings` is what the program uses: the same
values shaped for it (a local broker, the Kafka security options, the channels), with the defaults
that depend on other settings filled in.

Every setting has a default that runs the whole pipeline on one machine against the local broker
(``aftercare broker start``). Pointing Aftercare at a real cluster means setting
``KAFKA_BOOTSTRAP_SERVERS`` and, where the cluster needs them, the ``KAFKA_SECURITY_*`` /
``KAFKA_SASL_*`` / ``KAFKA_SSL_*`` variables, which are passed through to every Kafka client.
Secrets are :class:`~pydantic.SecretStr` from the environment to the call that needs them, so a
setting printed, logged or put in an exception shows ``**********``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict
from pydantic_settings.sources import PydanticBaseSettingsSource
from pydantic_settings.sources.utils import parse_env_vars

from pipeline.clock import AcceleratedClock, Clock, SystemClock
from pipeline.names import CUSTOMERS_TABLE, INPUT_ROLES, TopicRole
from pipeline.preferences.tokens import Signer, UnsubscribeLinks


class ConfigError(ValueError):
    """A setting has a value Aftercare cannot use. The message names the variable and the fix."""


# -- the kinds of value, each with the words a refusal uses ------------------------------------


@dataclass(frozen=True)
class Expect:
    """What a variable must be, in the words of its refusal: ``NAME must be <this>, got '...'``."""

    what: str


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


_HOST = re.compile(r"(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?")


def _host_and_port(entry: str) -> str | None:
    """Why ``entry`` is not ``host:port`` (IPv6 in brackets), or None."""
    host, colon, port = entry.rpartition(":")
    if not colon:
        return f"{entry!r} has no port (like {entry}:9092)"
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return f"{host!r} is not an IPv6 address"
    elif ":" in host:
        return f"{entry!r}: write an IPv6 address in brackets, like [::1]:9092"
    elif not _HOST.fullmatch(host):
        return f"{host!r} in {entry!r} is not a host name or address"
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"{port!r} in {entry!r} is not a TCP port (1-65535)"
    return None


def _broker_list(value: str) -> str:
    entries = [entry.strip() for entry in value.split(",")] if value else []
    for entry in entries:
        problem = _host_and_port(entry) if entry else "has an empty entry (a stray comma)"
        if problem:
            raise ValueError(
                f"{problem}; give a comma-separated host:port list, like "
                "kafka-1.internal:9092,kafka-2.internal:9092"
            )
    return ",".join(entries)


def _bind_address(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if value != "localhost" and not _HOST.fullmatch(value):
            raise ValueError(
                "is not an address to listen on (127.0.0.1: this machine only; 0.0.0.0: every "
                "interface, as in a container)"
            ) from None
    return value


def _http_url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError("is not an http(s) URL")
    return value


def _heap(value: str) -> str:
    if not re.fullmatch(r"[1-9][0-9]*[kKmMgG]?", value):
        raise ValueError("is not a JVM heap size (like 512m or 1g)")
    return value


def _instant(value: object) -> object:
    if not isinstance(value, str):
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("is not an ISO 8601 instant (like 2026-03-02T09:30:00Z)") from None
    if moment.tzinfo is None:
        raise ValueError(f"needs a time zone (like {value}Z or {value}+01:00)")
    return moment


Port = Annotated[int, Field(ge=1, le=65535), Expect("a TCP port (1-65535)")]
AnyPort = Annotated[int, Field(ge=0, le=65535), Expect("a TCP port (0-65535; 0: any free one)")]
Positive = Annotated[int, Field(ge=1), Expect("a positive integer")]
Count = Annotated[int, Field(ge=0), Expect("a whole number (0 or more)")]
PositiveNumber = Annotated[float, Field(gt=0), Expect("a positive number")]
Brokers = Annotated[str, AfterValidator(_broker_list)]
Url = Annotated[str, AfterValidator(_http_url)]
Secret = Annotated[SecretStr, Expect("a secret (text)")]

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
LOG_LEVELS = ("debug", "info", "warning", "error")

# The sandbox's signing key: anyone can read it, so a real cluster refuses it.
SANDBOX_PREFERENCES_KEY = "sandbox-preferences-key"


class Environment(BaseSettings):
    """Every variable Aftercare reads. The field is the variable's name; its description is the doc
    that ``aftercare config`` and the README show."""

    model_config = SettingsConfigDict(
        case_sensitive=True,
        env_ignore_empty=True,
        extra="ignore",
        str_strip_whitespace=True,
        frozen=True,
        validate_default=True,
    )

    # -- Kafka ---------------------------------------------------------------------------------
    KAFKA_BOOTSTRAP_SERVERS: Brokers = Field(
        "",
        description="Comma-separated host:port list of an existing cluster. Empty: use the local "
        "broker (127.0.0.1:AFTERCARE_BROKER_PORT), which `aftercare broker start` runs.",
    )
    KAFKA_CLIENT_ID: str = Field("aftercare", description="client.id prefix of every Kafka client.")
    KAFKA_SECURITY_PROTOCOL: Annotated[
        Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"], BeforeValidator(_upper)
    ] = Field("PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.")
    KAFKA_SASL_MECHANISM: Annotated[
        Literal["", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], BeforeValidator(_upper)
    ] = Field("", description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with SASL_* protocols).")
    KAFKA_SASL_USERNAME: str = Field("", description="SASL username.")
    KAFKA_SASL_PASSWORD: Secret = Field(SecretStr(""), description="SASL password.")
    KAFKA_SSL_CAFILE: str = Field(
        "", description="PEM file of the CA that signed the brokers' certificates."
    )
    KAFKA_SSL_CERTFILE: str = Field("", description="PEM client certificate, for mutual TLS.")
    KAFKA_SSL_KEYFILE: str = Field("", description="PEM client key, for mutual TLS.")
    KAFKA_SSL_KEY_PASSWORD: Secret = Field(
        SecretStr(""), description="Password of the client key, if it has one."
    )

    # -- topics --------------------------------------------------------------------------------
    AFTERCARE_TOPIC_PREFIX: str = Field(
        "",
        description="Prepended to every default topic name (e.g. `shop1.` gives "
        "`shop1.purchases`).",
    )
    AFTERCARE_TOPIC_PURCHASES: str = Field("", description="Full name of the `purchases` topic.")
    AFTERCARE_TOPIC_SHIPMENTS: str = Field("", description="Full name of the `shipments` topic.")
    AFTERCARE_TOPIC_APP_USAGE: str = Field("", description="Full name of the `app-usage` topic.")
    AFTERCARE_TOPIC_PREFERENCES: str = Field(
        "", description="Full name of the `preferences` topic."
    )
    AFTERCARE_TOPIC_DISPATCH: str = Field("", description="Full name of the `dispatch` topic.")
    AFTERCARE_TOPIC_DELIVERIES: str = Field("", description="Full name of the `deliveries` topic.")
    AFTERCARE_TOPIC_DEAD_LETTERS: str = Field(
        "", description="Full name of the `dead-letters` topic."
    )
    AFTERCARE_TOPIC_DUE_NOTICES: str = Field(
        "", description="Full name of the `due-notices` topic (the worker's own timers)."
    )
    AFTERCARE_TOPIC_INBOX: str = Field("", description="Full name of the `inbox` topic (in-app).")
    AFTERCARE_INPUT_PARTITIONS: Positive = Field(
        8,
        description="Partitions of each input topic (purchases, shipments, app-usage, "
        "preferences) and of due-notices; they must be equal. The most worker processes that can "
        "share the load.",
    )
    AFTERCARE_OUTPUT_PARTITIONS: Positive = Field(
        8,
        description="Partitions of dispatch, deliveries and dead-letters. The most sender "
        "processes that can share the load.",
    )
    AFTERCARE_REPLICATION_FACTOR: Positive = Field(
        1,
        description="Replication factor of the topics `aftercare topics create` makes (3 on a "
        "real cluster).",
    )
    AFTERCARE_MAX_FUTURE_SECONDS: Positive = Field(
        86400,
        description="An event whose occurred_at is further than this ahead of the clock is "
        "dead-lettered.",
    )

    # -- the local broker ----------------------------------------------------------------------
    AFTERCARE_HOME: str = Field(
        "~/.cache/aftercare",
        description="Where the local broker's jars, data and log, the worker's state and the "
        "sandbox's outbox live by default (outside any checkout).",
    )
    AFTERCARE_BROKER_PORT: Port = Field(
        9092, description="Client port of the local broker, on 127.0.0.1."
    )
    AFTERCARE_BROKER_CONTROLLER_PORT: Port | None = Field(
        None, description="KRaft controller port of the local broker. Empty: the client port + 1."
    )
    AFTERCARE_BROKER_HEAP: Annotated[str, AfterValidator(_heap)] = Field(
        "1g", description="JVM heap (-Xmx) of the local broker."
    )
    AFTERCARE_BROKER_NODES: Annotated[int, Field(ge=1, le=9), Expect("1 to 9")] = Field(
        1,
        description="Nodes of the local broker: 1, or a KRaft cluster of this many on 127.0.0.1 "
        "(node i on the client and controller ports + 2(i-1)); `aftercare broker start "
        "--brokers N` too.",
    )
    AFTERCARE_KAFKA_LIBS: str = Field(
        "",
        description="A folder of already fetched Kafka jars for the local broker, to skip the "
        "download.",
    )

    # -- the journeys and the clock ------------------------------------------------------------
    AFTERCARE_JOURNEYS_FILE: str = Field(
        "",
        description="The journeys file (YAML). Empty: the defaults shipped with Aftercare "
        "(pipeline/journeys/default-journeys.yaml); `aftercare journeys check` checks one.",
    )
    AFTERCARE_CLOCK_FACTOR: PositiveNumber = Field(
        1.0,
        description="1 runs on real time. Above 1, an accelerated clock for demos, backfills and "
        "tests: simulated time passes this many times faster.",
    )
    AFTERCARE_CLOCK_START: Annotated[datetime | None, BeforeValidator(_instant)] = Field(
        None,
        description="With an accelerated clock: the simulated instant (ISO 8601) at "
        "AFTERCARE_CLOCK_EPOCH. Empty: the real time at the epoch.",
    )
    AFTERCARE_CLOCK_EPOCH: PositiveNumber | None = Field(
        None,
        description="With an accelerated clock: the real Unix time (seconds) at which simulated "
        "time was AFTERCARE_CLOCK_START; give every process the same value so they agree. "
        "Empty: start.",
    )

    # -- the processes -------------------------------------------------------------------------
    AFTERCARE_WORKER_ID: str = Field(
        "",
        description="The worker's consumer group and table namespace. Empty: <topic "
        "prefix>aftercare-worker. Every worker of one deployment uses the same id.",
    )
    AFTERCARE_INSTANCE_ID: str = Field(
        "",
        description="This process's Kafka group.instance.id (static membership): a worker or "
        "senders process restarted with the same id within the session timeout takes its "
        "partitions back without a rebalance. Unique per process of a group (a StatefulSet's pod "
        "name). Empty: dynamic membership.",
    )
    AFTERCARE_STATE_DIR: str = Field(
        "",
        description="Where the worker keeps its RocksDB tables (a cache of the changelog "
        "topics). Empty: AFTERCARE_HOME/state/<worker id>.",
    )
    AFTERCARE_BIND_ADDRESS: Annotated[str, AfterValidator(_bind_address)] = Field(
        "127.0.0.1",
        description="Address the HTTP endpoints (health, metrics, the preferences service, the "
        "sandbox) listen on: 127.0.0.1 this machine only, 0.0.0.0 every interface (containers).",
    )
    AFTERCARE_WORKER_PORT: Port = Field(
        6066,
        description="HTTP port of the worker's health endpoints (/health/live, /health/ready) "
        "and /metrics.",
    )
    AFTERCARE_LOG_LEVEL: Annotated[
        Literal["debug", "info", "warning", "error"], BeforeValidator(_lower)
    ] = Field("info", description="debug, info, warning or error.")
    AFTERCARE_LOG_FORMAT: Annotated[Literal["text", "json"], BeforeValidator(_lower)] = Field(
        "text",
        description="text: one readable line per record; json: one JSON object per line (time, "
        "level, logger, process, message), for log shippers.",
    )
    AFTERCARE_SESSION_TIMEOUT_SECONDS: Annotated[
        float,
        Field(ge=6, le=1800),
        Expect("a number of seconds from 6 to 1800 (what brokers allow by default)"),
    ] = Field(
        10,
        description="How long the consumer group waits for a worker that stopped answering "
        "(killed, node lost) before giving its partitions to the others. The broker allows 6 to "
        "1800.",
    )
    AFTERCARE_MAX_IDLE_MS: Count = Field(
        100,
        description="How long the worker holds the records of one partition number while one of "
        "its inputs has nothing buffered, so that what happened first is decided first even when "
        "it is produced a little later (as Kafka Streams' max.task.idle.ms). An input with "
        "records on the broker not yet fetched is waited for up to 30 s; 0: only such "
        "inputs are waited for, and nothing produced later (lowest latency).",
    )
    AFTERCARE_STATE_CACHE_CUSTOMERS: Count = Field(
        10000,
        description="How many recently seen customers the worker keeps decoded in memory, so "
        "that their next event skips decoding the stored state (the stored bytes are still read "
        "and compared). Each costs about four times its stored size; 0 turns the cache off.",
    )
    AFTERCARE_SENDERS_ID: str = Field(
        "", description="The senders' consumer group. Empty: <topic prefix>aftercare-senders."
    )
    AFTERCARE_SENDERS_PORT: Port = Field(
        6067, description="HTTP port of the senders' health endpoints and /metrics."
    )
    AFTERCARE_SENDER_MAX_ATTEMPTS: Positive = Field(
        6, description="Provider calls per channel before falling back to the next channel."
    )
    AFTERCARE_SENDER_MAX_SECONDS_PER_CHANNEL: PositiveNumber = Field(
        120,
        description="Seconds, on the pipeline's clock (the one validity is measured on), spent "
        "retrying one channel before falling back to the next; while other channels remain, "
        "never more than half the touchpoint's remaining validity.",
    )
    AFTERCARE_SENDER_RATE_PER_SECOND: PositiveNumber = Field(
        50, description="Sends per second per provider and sender process (a token bucket)."
    )
    AFTERCARE_SENDER_DEDUPE_HOURS: PositiveNumber = Field(
        96,
        description="How far back in deliveries a sender looks, when it takes over a partition, "
        "for touchpoints that already ended.",
    )

    # -- channels: the defaults reach the local sandbox (`aftercare sandbox`), with its own
    # non-secret credentials; production sets the provider's URLs and secrets here.
    AFTERCARE_SMTP_HOST: str = Field("127.0.0.1", description="SMTP server for email.")
    AFTERCARE_SMTP_PORT: Port = Field(
        2525, description="Its port (587 for STARTTLS, 465 for implicit TLS)."
    )
    AFTERCARE_SMTP_TLS: Annotated[
        Literal["none", "starttls", "implicit"], BeforeValidator(_lower)
    ] = Field("none", description="none, starttls or implicit.")
    AFTERCARE_SMTP_USERNAME: str = Field("", description="SMTP AUTH user; empty: no AUTH.")
    AFTERCARE_SMTP_PASSWORD: Secret = Field(SecretStr(""), description="SMTP AUTH password.")
    AFTERCARE_SMTP_POOL_SIZE: Positive = Field(
        4, description="Open SMTP connections per sender process."
    )
    AFTERCARE_EMAIL_FROM: str = Field(
        "Aftercare <care@shop.example>", description="From: of every email."
    )
    AFTERCARE_UNSUBSCRIBE_URL: Url = Field(
        "http://127.0.0.1:6068",
        description="Public base URL of the preferences service (`aftercare preferences-api`): "
        "engagement and marketing mail carries <this>/unsubscribe?token=... as its one-click "
        "unsubscribe link.",
    )
    AFTERCARE_UNSUBSCRIBE_DAYS: Positive = Field(
        90, description="Days after the message was due that its unsubscribe link still works."
    )
    AFTERCARE_PREFERENCES_KEY: Secret = Field(
        SecretStr(SANDBOX_PREFERENCES_KEY),
        description="Secret that signs unsubscribe and preference links (the senders sign, the "
        "preferences service verifies: give both the same). At least 16 characters; the default "
        "is refused on a real cluster.",
    )
    AFTERCARE_CUSTOMER_API_TOKEN: Secret = Field(
        SecretStr(""),
        description="Bearer token of the worker's /customers/<id> page (one customer's state and "
        "history, as `aftercare customer` shows it). Empty: the page is off.",
    )
    AFTERCARE_PREFERENCES_PORT: Port = Field(
        6068,
        description="HTTP port of the preferences service (unsubscribe pages, preferences API, "
        "health, /metrics).",
    )
    AFTERCARE_SMS_BASE_URL: Url = Field(
        "http://127.0.0.1:8025/twilio", description="Twilio-shaped SMS API."
    )
    AFTERCARE_SMS_ACCOUNT_SID: str = Field(
        "ACsandbox", description="SMS account SID (Basic auth user)."
    )
    AFTERCARE_SMS_AUTH_TOKEN: Secret = Field(
        SecretStr("sandbox-token"), description="SMS auth token (Basic auth password)."
    )
    AFTERCARE_SMS_FROM: str = Field(
        "+15005550006", description="Sender number or messaging service."
    )
    AFTERCARE_WHATSAPP_BASE_URL: Url = Field(
        "http://127.0.0.1:8025/whatsapp", description="WhatsApp Cloud API-shaped endpoint."
    )
    AFTERCARE_WHATSAPP_PHONE_NUMBER_ID: str = Field(
        "1000000001", description="The sending phone number id."
    )
    AFTERCARE_WHATSAPP_TOKEN: Secret = Field(
        SecretStr("sandbox-whatsapp-token"), description="Bearer token."
    )
    AFTERCARE_PUSH_BASE_URL: Url = Field(
        "http://127.0.0.1:8025/fcm", description="FCM v1-shaped push API."
    )
    AFTERCARE_PUSH_PROJECT_ID: str = Field("aftercare-sandbox", description="The push project id.")
    AFTERCARE_PUSH_TOKEN: Secret = Field(
        SecretStr("sandbox-push-token"), description="OAuth bearer token for push."
    )
    AFTERCARE_WEBHOOK_URL: Url = Field(
        "http://127.0.0.1:8025/webhook/support",
        description="Where support hand-offs (and other webhook touchpoints) are POSTed.",
    )
    AFTERCARE_WEBHOOK_SECRET: Secret = Field(
        SecretStr("sandbox-webhook-secret"), description="HMAC secret of the signature."
    )

    # -- the sandbox ---------------------------------------------------------------------------
    AFTERCARE_SANDBOX_HTTP_PORT: AnyPort = Field(
        8025,
        description="The sandbox's provider APIs (and its control API, which `aftercare sandbox "
        "messages` and `fault` call).",
    )
    AFTERCARE_SANDBOX_SMTP_PORT: AnyPort = Field(2525, description="The sandbox's SMTP server.")
    AFTERCARE_SANDBOX_DB: str = Field(
        "",
        description="The sandbox's outbox: every message it accepted (SQLite). Empty: "
        "AFTERCARE_HOME/sandbox/outbox.sqlite.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Environment:
        controller = self.AFTERCARE_BROKER_CONTROLLER_PORT
        if controller == self.AFTERCARE_BROKER_PORT:
            raise ValueError(
                "AFTERCARE_BROKER_CONTROLLER_PORT must differ from AFTERCARE_BROKER_PORT "
                f"(both are {controller})."
            )
        protocol = self.KAFKA_SECURITY_PROTOCOL
        if protocol.startswith("SASL"):
            if not self.KAFKA_SASL_MECHANISM:
                raise ValueError(
                    f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_MECHANISM set to one "
                    f"of {', '.join(SASL_MECHANISMS)}."
                )
            if not self.KAFKA_SASL_USERNAME:
                raise ValueError(
                    f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and "
                    "KAFKA_SASL_PASSWORD."
                )
        if "{" in self.AFTERCARE_UNSUBSCRIBE_URL:
            raise ValueError(
                f"AFTERCARE_UNSUBSCRIBE_URL={self.AFTERCARE_UNSUBSCRIBE_URL!r} has placeholders; "
                "it is the public base URL of `aftercare preferences-api` (like "
                "https://preferences.shop.example), and each link is <base>/unsubscribe?token=..."
            )
        roles_of: dict[str, list[str]] = {}
        for role in TopicRole:
            roles_of.setdefault(topic_name(self, role), []).append(f"AFTERCARE_TOPIC_{role.name}")
        for name, variables in roles_of.items():
            if len(variables) > 1:
                raise ValueError(
                    f"{' and '.join(variables)} share one topic name, {name!r}; every role "
                    "needs its own topic."
                )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        given = _GIVEN.get()
        return (init_settings, env_settings if given is None else _GivenSource(settings_cls, given))

    @classmethod
    def read(cls, environ: Mapping[str, str] | None = None) -> Environment:
        """The variables of ``environ`` (the process's environment by default), checked."""
        token = _GIVEN.set(environ)
        try:
            return cls()  # type: ignore[call-arg]  # every field has a default
        except ValidationError as exc:
            raise ConfigError(_explain(exc, environ)) from None
        finally:
            _GIVEN.reset(token)


_GIVEN: ContextVar[Mapping[str, str] | None] = ContextVar("aftercare_environ", default=None)


class _GivenSource(EnvSettingsSource):
    """The environment source, reading a given mapping instead of ``os.environ`` (tests, the demo
    computing what its children will read)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._given = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._given, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


def topic_name(env: Environment, role: TopicRole) -> str:
    override: str = getattr(env, f"AFTERCARE_TOPIC_{role.name}")
    return override or f"{env.AFTERCARE_TOPIC_PREFIX}{role.value}"


def _explain(exc: ValidationError, environ: Mapping[str, str] | None) -> str:
    """One line per unusable variable: its name, what it must be, what it was."""
    lines = [_explain_one(error, environ) for error in exc.errors()]
    return " ".join(dict.fromkeys(lines))


def _explain_one(error: ErrorDetails, environ: Mapping[str, str] | None) -> str:
    if not error["loc"]:  # a check across variables: its message says it all
        return str(error["ctx"]["error"]) if "ctx" in error else error["msg"]
    name = str(error["loc"][0])
    info = Environment.model_fields[name]
    raw = (os.environ if environ is None else environ).get(name, "").strip()
    shown = "(hidden)" if _is_secret(name) else repr(raw)
    if error["type"] == "value_error":
        problem = str(error["ctx"]["error"])
        # "is not ..." follows the value; a sentence of its own ("'x' has no port") after a colon
        joint = " " if problem.split(" ", 1)[0] in {"is", "needs", "has", "must"} else ": "
        return f"{name}={shown}{joint}{problem}."
    expect = _expectation(info.metadata, info.annotation)
    if expect is None and error["type"] == "literal_error":
        expect = "one of " + error["ctx"]["expected"].replace("'", "")
    return f"{name} must be {expect or error['msg'].lower()}, got {shown}."


def _expectation(metadata: Sequence[object], annotation: object) -> str | None:
    """The :class:`Expect` words of a field, looked for in its own metadata and, for an optional
    field (``Positive | None``), in its alternatives'."""
    for each in metadata:
        if isinstance(each, Expect):
            return each.what
    for alternative in get_args(annotation):
        found = _expectation(getattr(alternative, "__metadata__", ()), alternative)
        if found:
            return found
    return None


def _is_secret(name: str) -> bool:
    annotation = Environment.model_fields[name].annotation
    return annotation is SecretStr


@dataclass(frozen=True)
class Variable:
    """One variable as `aftercare config` and the README show it."""

    name: str
    default: str
    doc: str
    secret: bool


def _shown_default(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


VARIABLES: tuple[Variable, ...] = tuple(
    Variable(name, _shown_default(info.default), info.description or "", _is_secret(name))
    for name, info in Environment.model_fields.items()
)


HIDDEN = "**********"  # what a secret shows, wherever it is shown


def listing(env: Environment) -> list[str]:
    """``aftercare config``: each variable, its value (secrets hidden, defaults marked) and its doc,
    two lines each."""
    lines = []
    for variable in VARIABLES:
        value = getattr(env, variable.name)
        shown = HIDDEN if variable.secret and _shown_default(value) else _shown_default(value)
        if variable.name not in env.model_fields_set:
            shown = f"{shown} (default)" if shown else "(empty, the default)"
        lines += [f"{variable.name}={shown}", f"    {variable.doc}"]
    return lines


def markdown_table() -> str:
    """The README's configuration table (``aftercare config --markdown``), one row a variable."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for variable in VARIABLES:
        if variable.secret and variable.default:
            default = "the sandbox's (secret)"
        elif variable.default:
            default = f"`{variable.default}`"
        else:
            default = "(empty)"
        doc = variable.doc.replace("|", "\\|")
        rows.append(f"| `{variable.name}` | {default} | {doc} |")
    return "\n".join(rows) + "\n"


# -- what the program uses ---------------------------------------------------------------------


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: SecretStr = field(default_factory=lambda: SecretStr(""))
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    ssl_key_password: SecretStr = field(default_factory=lambda: SecretStr(""))

    def ssl_context(self) -> ssl.SSLContext | None:
        if "SSL" not in self.protocol:
            return None
        for name, path in (
            ("KAFKA_SSL_CAFILE", self.ssl_cafile),
            ("KAFKA_SSL_CERTFILE", self.ssl_certfile),
            ("KAFKA_SSL_KEYFILE", self.ssl_keyfile),
        ):
            if path and not Path(path).is_file():
                raise ConfigError(f"{name}={path!r} is not a readable file.")
        context = ssl.create_default_context(cafile=self.ssl_cafile or None)
        if self.ssl_certfile:
            context.load_cert_chain(
                self.ssl_certfile,
                self.ssl_keyfile or None,
                self.ssl_key_password.get_secret_value() or None,
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
class ChannelSettings:
    smtp_host: str
    smtp_port: int
    smtp_tls: str
    smtp_username: str
    smtp_password: SecretStr
    smtp_pool_size: int
    email_from: str
    unsubscribe_url: str
    sms_base_url: str
    sms_account_sid: str
    sms_auth_token: SecretStr
    sms_from: str
    whatsapp_base_url: str
    whatsapp_phone_number_id: str
    whatsapp_token: SecretStr
    push_base_url: str
    push_project_id: str
    push_token: SecretStr
    webhook_url: str
    webhook_secret: SecretStr


@dataclass(frozen=True)
class SandboxSettings:
    """Where the provider sandbox listens and keeps its outbox."""

    http_port: int
    smtp_port: int
    db_path: Path

    @property
    def url(self) -> str:
        """Its HTTP base URL as this machine reaches it (also its control API's)."""
        return f"http://127.0.0.1:{self.http_port}"


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
    instance_id: str
    state_dir: Path
    bind_address: str
    worker_port: int
    log_level: str
    log_format: str
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
    preferences_key: SecretStr
    unsubscribe_days: int
    customer_api_token: SecretStr
    sandbox: SandboxSettings
    # Which variables the environment set (the rest are defaults): `config` and the report ask.
    given: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        return cls.from_environment(Environment.read(environ))

    @classmethod
    def from_environment(cls, env: Environment) -> Settings:
        home = Path(env.AFTERCARE_HOME).expanduser()
        port = env.AFTERCARE_BROKER_PORT
        local = LocalBroker(
            home=home,
            port=port,
            controller_port=env.AFTERCARE_BROKER_CONTROLLER_PORT or port + 1,
            heap=env.AFTERCARE_BROKER_HEAP,
            nodes=env.AFTERCARE_BROKER_NODES,
        )
        prefix = env.AFTERCARE_TOPIC_PREFIX
        worker_id = env.AFTERCARE_WORKER_ID or f"{prefix}aftercare-worker"
        state_dir = env.AFTERCARE_STATE_DIR
        bootstrap = env.KAFKA_BOOTSTRAP_SERVERS
        return cls(
            bootstrap_servers=bootstrap or local.bootstrap,
            uses_local_broker=not bootstrap,
            client_id=env.KAFKA_CLIENT_ID,
            security=KafkaSecurity(
                protocol=env.KAFKA_SECURITY_PROTOCOL,
                sasl_mechanism=env.KAFKA_SASL_MECHANISM,
                sasl_username=env.KAFKA_SASL_USERNAME,
                sasl_password=env.KAFKA_SASL_PASSWORD,
                ssl_cafile=env.KAFKA_SSL_CAFILE,
                ssl_certfile=env.KAFKA_SSL_CERTFILE,
                ssl_keyfile=env.KAFKA_SSL_KEYFILE,
                ssl_key_password=env.KAFKA_SSL_KEY_PASSWORD,
            ),
            topic_prefix=prefix,
            topics={role: topic_name(env, role) for role in TopicRole},
            input_partitions=env.AFTERCARE_INPUT_PARTITIONS,
            output_partitions=env.AFTERCARE_OUTPUT_PARTITIONS,
            replication_factor=env.AFTERCARE_REPLICATION_FACTOR,
            max_future_seconds=env.AFTERCARE_MAX_FUTURE_SECONDS,
            local_broker=local,
            journeys_file=env.AFTERCARE_JOURNEYS_FILE,
            clock_factor=env.AFTERCARE_CLOCK_FACTOR,
            clock_start=env.AFTERCARE_CLOCK_START,
            clock_epoch=env.AFTERCARE_CLOCK_EPOCH,
            worker_id=worker_id,
            instance_id=env.AFTERCARE_INSTANCE_ID,
            state_dir=Path(state_dir).expanduser() if state_dir else home / "state" / worker_id,
            bind_address=env.AFTERCARE_BIND_ADDRESS,
            worker_port=env.AFTERCARE_WORKER_PORT,
            log_level=env.AFTERCARE_LOG_LEVEL,
            log_format=env.AFTERCARE_LOG_FORMAT,
            session_timeout_seconds=env.AFTERCARE_SESSION_TIMEOUT_SECONDS,
            max_idle_seconds=env.AFTERCARE_MAX_IDLE_MS / 1000,
            state_cache_customers=env.AFTERCARE_STATE_CACHE_CUSTOMERS,
            channels=ChannelSettings(
                smtp_host=env.AFTERCARE_SMTP_HOST,
                smtp_port=env.AFTERCARE_SMTP_PORT,
                smtp_tls=env.AFTERCARE_SMTP_TLS,
                smtp_username=env.AFTERCARE_SMTP_USERNAME,
                smtp_password=env.AFTERCARE_SMTP_PASSWORD,
                smtp_pool_size=env.AFTERCARE_SMTP_POOL_SIZE,
                email_from=env.AFTERCARE_EMAIL_FROM,
                unsubscribe_url=env.AFTERCARE_UNSUBSCRIBE_URL,
                sms_base_url=env.AFTERCARE_SMS_BASE_URL,
                sms_account_sid=env.AFTERCARE_SMS_ACCOUNT_SID,
                sms_auth_token=env.AFTERCARE_SMS_AUTH_TOKEN,
                sms_from=env.AFTERCARE_SMS_FROM,
                whatsapp_base_url=env.AFTERCARE_WHATSAPP_BASE_URL,
                whatsapp_phone_number_id=env.AFTERCARE_WHATSAPP_PHONE_NUMBER_ID,
                whatsapp_token=env.AFTERCARE_WHATSAPP_TOKEN,
                push_base_url=env.AFTERCARE_PUSH_BASE_URL,
                push_project_id=env.AFTERCARE_PUSH_PROJECT_ID,
                push_token=env.AFTERCARE_PUSH_TOKEN,
                webhook_url=env.AFTERCARE_WEBHOOK_URL,
                webhook_secret=env.AFTERCARE_WEBHOOK_SECRET,
            ),
            senders_id=env.AFTERCARE_SENDERS_ID or f"{prefix}aftercare-senders",
            senders_port=env.AFTERCARE_SENDERS_PORT,
            sender_max_attempts=env.AFTERCARE_SENDER_MAX_ATTEMPTS,
            sender_max_seconds_per_channel=env.AFTERCARE_SENDER_MAX_SECONDS_PER_CHANNEL,
            sender_rate_per_second=env.AFTERCARE_SENDER_RATE_PER_SECOND,
            sender_dedupe_hours=env.AFTERCARE_SENDER_DEDUPE_HOURS,
            preferences_port=env.AFTERCARE_PREFERENCES_PORT,
            preferences_key=env.AFTERCARE_PREFERENCES_KEY,
            unsubscribe_days=env.AFTERCARE_UNSUBSCRIBE_DAYS,
            customer_api_token=env.AFTERCARE_CUSTOMER_API_TOKEN,
            sandbox=SandboxSettings(
                http_port=env.AFTERCARE_SANDBOX_HTTP_PORT,
                smtp_port=env.AFTERCARE_SANDBOX_SMTP_PORT,
                db_path=(
                    Path(env.AFTERCARE_SANDBOX_DB).expanduser()
                    if env.AFTERCARE_SANDBOX_DB
                    else home / "sandbox" / "outbox.sqlite"
                ),
            ),
            given=frozenset(env.model_fields_set),
        )

    def signer(self) -> Signer:
        """What signs and verifies preference links; refuses a key anyone could know."""
        key = self.preferences_key.get_secret_value()
        if key == SANDBOX_PREFERENCES_KEY and not self.uses_local_broker:
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
            kwargs["sasl_plain_password"] = self.security.sasl_password.get_secret_value()
        return kwargs
