"""The ports a demo run's children listen on, and the channel settings that reach its sandbox."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from pipeline.config import Settings
from pipeline.demo.options import DemoError
from pipeline.sandbox.server import SandboxConfig

SANDBOX = SandboxConfig()


@dataclass
class Ports:
    worker: int
    senders: int
    sandbox_http: int
    sandbox_smtp: int
    preferences: int = 6068
    notes: list[str] = field(default_factory=list)

    @property
    def preferences_url(self) -> str:
        return f"http://127.0.0.1:{self.preferences}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_http}"

    @property
    def worker_metrics(self) -> str:
        return f"http://127.0.0.1:{self.worker}/metrics"

    @property
    def senders_metrics(self) -> str:
        return f"http://127.0.0.1:{self.senders}/metrics"


# -- ports and channel settings --------------------------------------------------------------


def choose_ports(settings: Settings, environ: Mapping[str, str]) -> Ports:
    """The configured ports; a default one that is taken is replaced by a free one (and said so),
    a port set explicitly that is taken is an error naming its variable."""
    notes: list[str] = []

    def pick(name: str, configured: int) -> int:
        if _port_free(configured):
            return configured
        if environ.get(name, "").strip():
            raise DemoError(
                f"{name}={configured} is in use by another program: stop it, or set {name} to a "
                "free port"
            )
        port = _free_port()
        notes.append(f"port {configured} ({name}) is in use; using {port} instead")
        return port

    sandbox_http = int(environ.get("AFTERCARE_SANDBOX_HTTP_PORT", "").strip() or SANDBOX.http_port)
    sandbox_smtp = int(environ.get("AFTERCARE_SANDBOX_SMTP_PORT", "").strip() or SANDBOX.smtp_port)
    return Ports(
        worker=pick("AFTERCARE_WORKER_PORT", settings.worker_port),
        senders=pick("AFTERCARE_SENDERS_PORT", settings.senders_port),
        sandbox_http=pick("AFTERCARE_SANDBOX_HTTP_PORT", sandbox_http),
        sandbox_smtp=pick("AFTERCARE_SANDBOX_SMTP_PORT", sandbox_smtp),
        preferences=pick("AFTERCARE_PREFERENCES_PORT", settings.preferences_port),
        notes=notes,
    )


def sandbox_channels(ports: Ports) -> dict[str, str]:
    """Channel settings that reach the sandbox on ``ports``, with its credentials."""
    url = ports.sandbox_url
    return {
        "AFTERCARE_SMTP_HOST": "127.0.0.1",
        "AFTERCARE_SMTP_PORT": str(ports.sandbox_smtp),
        "AFTERCARE_SMTP_TLS": "none",
        "AFTERCARE_SMTP_USERNAME": SANDBOX.smtp_username,
        "AFTERCARE_SMTP_PASSWORD": SANDBOX.smtp_password,
        "AFTERCARE_SMS_BASE_URL": f"{url}/twilio",
        "AFTERCARE_SMS_ACCOUNT_SID": SANDBOX.sms_account_sid,
        "AFTERCARE_SMS_AUTH_TOKEN": SANDBOX.sms_auth_token,
        "AFTERCARE_WHATSAPP_BASE_URL": f"{url}/whatsapp",
        "AFTERCARE_WHATSAPP_TOKEN": SANDBOX.whatsapp_token,
        "AFTERCARE_PUSH_BASE_URL": f"{url}/fcm",
        "AFTERCARE_PUSH_TOKEN": SANDBOX.push_token,
        "AFTERCARE_WEBHOOK_URL": f"{url}/webhook/support",
        "AFTERCARE_WEBHOOK_SECRET": SANDBOX.webhook_secret,
    }


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
