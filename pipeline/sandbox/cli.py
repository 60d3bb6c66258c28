"""``aftercare sandbox``: run the provider sandbox, read its outbox, inject faults into it.

    aftercare sandbox [serve] [--seed N]     run it until SIGTERM or Ctrl-C
    aftercare sandbox messages [--channel C] [--touchpoint ID] [--json] [--url URL]
    aftercare sandbox fault CHANNEL [--latency-ms N] [--error-rate R] [--throttle-rate R]
                                    [--retry-after S] [--outage-seconds S] [--reject-rate R]
                                    [--clear] [--url URL]

``messages`` and ``fault`` talk to a running sandbox over its control API (``/_sandbox/...``), so
they work on one started by ``make run``, by another terminal or by a test. ``fault`` without
options prints the channel's current faults; ``--clear`` first resets them all; ``--outage-seconds
S`` starts an outage that ends S seconds from now (0 ends it).

``serve`` takes its ports, address and outbox from the settings (``aftercare config``; other
settings, credentials included, keep the defaults of
:class:`~pipeline.sandbox.server.SandboxConfig`, which match the channel defaults in
:mod:`pipeline.config`), and ``messages`` and ``fault`` reach it on the same HTTP port unless
``--url`` says otherwise:

    AFTERCARE_SANDBOX_HTTP_PORT   8025   HTTP port of the provider APIs and the control API
    AFTERCARE_SANDBOX_SMTP_PORT   2525   SMTP port
    AFTERCARE_SANDBOX_DB          (empty: AFTERCARE_HOME/sandbox/outbox.sqlite)   the outbox
    AFTERCARE_BIND_ADDRESS        127.0.0.1 (0.0.0.0 in a container)   where it listens

Every failure ends in one line on stderr that says what went wrong and what to do, and exit
status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from pipeline import logs
from pipeline.config import ConfigError, Settings
from pipeline.sandbox.faults import Faults
from pipeline.sandbox.server import SandboxConfig, SandboxError, serve_forever
from pipeline.sandbox.store import CHANNELS, SandboxStoreError

Handler = Callable[["Settings", argparse.Namespace], int]


class SandboxCommandError(Exception):
    """A failure the user can fix; printed as one line, exit status 1."""


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``sandbox`` and its actions on the ``aftercare`` command's subparsers."""
    sandbox = subparsers.add_parser(
        "sandbox",
        help="local stand-ins for the SMTP, SMS, WhatsApp, push and webhook providers",
        description="Local stand-ins for the message providers (SMTP, a Twilio-shaped SMS API, "
        "the WhatsApp Cloud API, FCM v1 push, a webhook receiver) that keep what they accept in "
        "an outbox, with faults to inject.",
    )
    sandbox.set_defaults(handler=_guarded(_serve), seed=None)
    actions = sandbox.add_subparsers(metavar="ACTION", required=False)

    serve = actions.add_parser(
        "serve",
        help="run the sandbox (the default action)",
        description="Run the sandbox until SIGTERM or Ctrl-C, on AFTERCARE_SANDBOX_HTTP_PORT and "
        "AFTERCARE_SANDBOX_SMTP_PORT of AFTERCARE_BIND_ADDRESS, its outbox in "
        "AFTERCARE_SANDBOX_DB.",
    )
    serve.add_argument("--seed", type=int, help="seed of the fault draws, for repeatable runs")
    serve.set_defaults(handler=_guarded(_serve))

    messages = actions.add_parser(
        "messages",
        help="print what a running sandbox received",
        description="List the messages a running sandbox accepted, oldest first, as a table or "
        "as JSON lines.",
    )
    messages.add_argument("--channel", choices=CHANNELS, help="only this channel")
    messages.add_argument("--touchpoint", help="only messages of this touchpoint id")
    messages.add_argument("--json", action="store_true", help="one JSON object per line")
    _url_option(messages)
    messages.set_defaults(handler=_guarded(_messages))

    fault = actions.add_parser(
        "fault",
        help="change a running sandbox's faults for a channel",
        description="Set latency, error, throttle, reject rates or an outage on one channel of a "
        "running sandbox; without options, print the channel's faults.",
    )
    fault.add_argument("channel", choices=CHANNELS, help="the channel whose faults to change")
    fault.add_argument("--latency-ms", type=float, help="added before every answer")
    fault.add_argument("--error-rate", type=float, help="0..1: retryable 5xx / SMTP 451")
    fault.add_argument("--throttle-rate", type=float, help="0..1: 429 / SMTP 421 4.7.0")
    fault.add_argument("--retry-after", type=int, help="Retry-After of throttled answers (s)")
    fault.add_argument(
        "--outage-seconds", type=float, help="every request fails for this long (0: end it)"
    )
    fault.add_argument("--reject-rate", type=float, help="0..1: permanent 400 / SMTP 550")
    fault.add_argument("--clear", action="store_true", help="reset every fault first")
    _url_option(fault)
    fault.set_defaults(handler=_guarded(_fault))


def _url_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        help="the running sandbox (default http://127.0.0.1:AFTERCARE_SANDBOX_HTTP_PORT)",
    )


def _url(settings: Settings, args: argparse.Namespace) -> str:
    return str(args.url or settings.sandbox.url)


def _guarded(handler: Handler) -> Handler:
    def run(settings: Settings, args: argparse.Namespace) -> int:
        try:
            return handler(settings, args)
        except (SandboxCommandError, SandboxError, SandboxStoreError) as exc:
            print(f"aftercare sandbox: {exc}", file=sys.stderr)
            return 1

    return run


def sandbox_config(settings: Settings, seed: int | None = None) -> SandboxConfig:
    """What ``aftercare sandbox serve`` runs: the sandbox settings (see the module docstring)."""
    return SandboxConfig(
        http_port=settings.sandbox.http_port,
        smtp_port=settings.sandbox.smtp_port,
        db_path=settings.sandbox.db_path,
        bind_address=settings.bind_address,
        seed=seed,
    )


def config_from_env(
    environ: Mapping[str, str] | None = None, seed: int | None = None
) -> SandboxConfig:
    """:func:`sandbox_config` of the settings in ``environ`` (the process's by default)."""
    try:
        return sandbox_config(Settings.from_env(environ), seed)
    except ConfigError as exc:
        raise SandboxCommandError(str(exc)) from None


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    logs.configure(settings.log_level, settings.log_format)
    asyncio.run(serve_forever(sandbox_config(settings, args.seed)))
    return 0


def _messages(settings: Settings, args: argparse.Namespace) -> int:
    params = {"channel": args.channel, "touchpoint_id": args.touchpoint}
    url = _url(settings, args)
    found = asyncio.run(
        _call(url, "GET", "/_sandbox/messages", params={k: v for k, v in params.items() if v})
    )
    if not isinstance(found, list):
        raise SandboxCommandError(f"{url} answered {found!r}, not a list of messages")
    if args.json:
        for message in found:
            print(json.dumps(message, sort_keys=True))
        return 0
    if not found:
        print("no messages")
        return 0
    rows = [
        (
            str(m["id"]),
            m["channel"],
            m["touchpoint_id"] or "-",
            m["recipient"],
            _summary(m),
        )
        for m in found
    ]
    header = ("id", "channel", "touchpoint", "recipient", "subject / body")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        padded = [cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)]
        print("  ".join([*padded, row[4]]))
    return 0


def _summary(message: Mapping[str, Any], width: int = 60) -> str:
    text = message["subject"] or message["body"]
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _fault(settings: Settings, args: argparse.Namespace) -> int:
    changes: dict[str, object] = Faults().to_json() if args.clear else {}
    given = {
        "latency_ms": args.latency_ms,
        "error_rate": args.error_rate,
        "throttle_rate": args.throttle_rate,
        "retry_after_s": args.retry_after,
        "reject_rate": args.reject_rate,
    }
    changes.update({name: value for name, value in given.items() if value is not None})
    if args.outage_seconds is not None:
        changes["outage_until"] = (
            time.time() + args.outage_seconds if args.outage_seconds > 0 else None
        )
    url = _url(settings, args)
    if changes:
        faults = asyncio.run(
            _call(url, "PUT", f"/_sandbox/faults/{args.channel}", json_body=changes)
        )
    else:
        faults = asyncio.run(_call(url, "GET", "/_sandbox/faults"))[args.channel]
    print(json.dumps({args.channel: faults}, sort_keys=True))
    return 0


async def _call(
    url: str,
    method: str,
    path: str,
    *,
    params: Mapping[str, str] | None = None,
    json_body: object = None,
) -> Any:
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10.0) as client:
            response = await client.request(method, path, params=params, json=json_body)
    except httpx.HTTPError as exc:
        raise SandboxCommandError(
            f"no sandbox answered at {url} ({exc.__class__.__name__}: {exc}); start one with "
            "`aftercare sandbox` or pass --url"
        ) from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_error:
        reason = body.get("error") if isinstance(body, dict) else response.text[:200]
        raise SandboxCommandError(f"{method} {url}{path} failed ({response.status_code}): {reason}")
    if body is None:
        raise SandboxCommandError(f"{url}{path} did not answer JSON; is that a sandbox?")
    return body
