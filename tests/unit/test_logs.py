"""Log lines as people and log shippers read them, and aiokafka's bootstrap noise kept out."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import socket
from collections.abc import Iterator
from datetime import datetime

import pytest

from pipeline import logs
from pipeline.privacy import mask_address, mask_addresses_in


@pytest.fixture
def captured(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    """Logging configured as a process would, writing to a buffer instead of stderr."""
    form = request.param
    config = logs.logging_config("info", form)
    buffer = io.StringIO()
    config["handlers"]["stderr"]["stream"] = buffer
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logging.config.dictConfig(config)
    yield buffer
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


@pytest.mark.parametrize("captured", ["json"], indirect=True)
def test_json_lines_carry_time_level_logger_process_and_message(captured: io.StringIO) -> None:
    logging.getLogger("pipeline.worker").info("due index rebuilt: %d customers", 3)
    try:
        raise ValueError("broken")
    except ValueError:
        logging.getLogger("pipeline.senders").exception("delivering failed")
    first, second = (json.loads(line) for line in captured.getvalue().splitlines())
    assert first["message"] == "due index rebuilt: 3 customers"
    assert first["level"] == "INFO"
    assert first["logger"] == "pipeline.worker"
    assert isinstance(first["process"], int)
    assert datetime.fromisoformat(first["time"]).utcoffset() is not None
    assert second["level"] == "ERROR"
    assert "ValueError: broken" in second["exc_info"]


@pytest.mark.parametrize("captured", ["text"], indirect=True)
def test_text_lines_are_one_readable_line(captured: io.StringIO) -> None:
    logging.getLogger("pipeline.worker").warning("commit failed")
    (line,) = captured.getvalue().splitlines()
    assert line.endswith("[WARNING] commit failed")


@pytest.mark.parametrize("captured", ["text"], indirect=True)
def test_chatty_libraries_are_turned_down_at_info(captured: io.StringIO) -> None:
    logging.getLogger("httpx").info("HTTP Request: POST https://api.example/Accounts/AC1/Messages")
    logging.getLogger("mail.log").info("Peer: ('127.0.0.1', 5000) MAIL FROM:<ada@example.org>")
    assert captured.getvalue() == ""


@pytest.mark.parametrize("captured", ["text"], indirect=True)
def test_failed_bootstrap_attempts_are_remembered_not_logged(captured: io.StringIO) -> None:
    refused = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)")
    unknown = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    client = logging.getLogger("aiokafka")
    client.error('Unable connect to "%s:%s": %s', "127.0.0.1", 9, refused)
    client.error('Unable connect to "%s:%s": %s', "kafka.invalid", 9092, unknown)
    client.error("something else went wrong")
    assert captured.getvalue().strip().endswith("[ERROR] something else went wrong")
    assert "Unable connect" not in captured.getvalue()
    failures = logs.bootstrap_failures()
    assert failures["127.0.0.1:9"] == "Connection refused"
    assert failures["kafka.invalid:9092"] == "Name or service not known"


def test_addresses_and_numbers_are_masked_in_text() -> None:
    text = (
        "contact.phone '+10000000' is not valid: +1 0000000 is not a number any carrier assigns, "
        "nor is +1 650-253-00; reply to ada.lovelace@example.org"
    )
    masked = mask_addresses_in(text)
    assert "0000000" not in masked
    assert "253-00" not in masked
    assert "ada.lovelace@example.org" not in masked
    assert "a***@example.org" in masked
    assert mask_address("+4915112345678") == "+49***78"
