"""The provider sandbox: local stand-ins for every message provider, with fault injection.

What is a sandbox for? Aftercare's senders talk to an SMTP relay and to SMS, WhatsApp, push and
webhook APIs. Development, demos (``make run``) and tests need all of them, without accounts,
without a network and without texting anyone. They also need the providers to misbehave on cue:
a sender's retry, back-off and dead-letter paths are only as good as the failures they were tried
against.

So the sandbox is not a mock. It is a real SMTP server (:mod:`.smtp`) and real HTTP APIs shaped
like Twilio, WhatsApp Cloud, FCM v1 and a signed webhook (:mod:`.http`), reached through exactly
the configuration a production provider is: a base URL, credentials, a host and a port. Whatever
they accept lands in a SQLite outbox (:mod:`.store`) that tests and ``aftercare sandbox messages``
read. Each channel's faults (latency, transient errors, throttling, outages, permanent rejections;
:mod:`.faults`) can be changed while it runs, and decisions come from a seedable random source so
tests are deterministic. :mod:`.server` wires it into one event loop; :mod:`.cli` gives it commands.
"""

from pipeline.sandbox.faults import FaultError, FaultInjector, Faults
from pipeline.sandbox.server import Sandbox, SandboxConfig, SandboxError, serve_forever
from pipeline.sandbox.store import CHANNELS, RESULTS, SandboxStore, SandboxStoreError

__all__ = [
    "CHANNELS",
    "RESULTS",
    "FaultError",
    "FaultInjector",
    "Faults",
    "Sandbox",
    "SandboxConfig",
    "SandboxError",
    "SandboxStore",
    "SandboxStoreError",
    "serve_forever",
]
