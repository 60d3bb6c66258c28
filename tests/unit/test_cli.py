"""The ``aftercare`` command explains itself: a version, a description for every command and option,
and an offline check of a journeys file that names the line of each mistake."""

from __future__ import annotations

import argparse
from importlib.metadata import version
from pathlib import Path

import pytest

from pipeline.cli import _parser, main
from pipeline.journeysfile import DEFAULT_JOURNEYS

# No broker listens here: whatever these tests run must not need one.
OFFLINE = {
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
    "AFTERCARE_JOURNEYS_FILE": "",
    "AFTERCARE_PREFERENCES_KEY": "a-key-of-this-test-only-0123456789",
}


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in OFFLINE.items():
        monkeypatch.setenv(name, value)


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser, str | None]]:
    """Every (sub)command under ``parser``: its words, its parser and the help its parent gives."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                found.append(((*path, name), sub, helps.get(name)))
                found.extend(_commands(sub, (*path, name)))
    return found


COMMANDS = _commands(_parser())


def test_the_tree_holds_every_command_a_newcomer_is_told_about() -> None:
    names = {" ".join(words) for words, _, _ in COMMANDS}
    for command in (
        "broker",
        "topics",
        "produce",
        "consume",
        "config",
        "journeys",
        "worker",
        "senders",
        "preferences-api",
        "sandbox",
        "simulate",
        "deliveries",
        "report",
        "customer",
        "run",
    ):
        assert command in names
    assert _parser().parse_args(["journeys", "check"]).action == "check"


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[0]))
def test_every_command_says_what_it_does(
    command: tuple[tuple[str, ...], argparse.ArgumentParser, str | None],
) -> None:
    words, parser, summary = command
    assert summary, f"`aftercare {' '.join(words)}` has no line in its parent's --help"
    assert parser.description, f"`aftercare {' '.join(words)} --help` has no description"
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
            continue
        assert action.help, f"`aftercare {' '.join(words)}`: {action.dest} has no help"


def test_every_option_of_the_top_level_says_what_it_does() -> None:
    for action in _parser()._actions:
        if not isinstance(action, argparse._SubParsersAction):
            assert action.help


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"aftercare {version('aftercare')}"


def test_journeys_check_passes_the_shipped_file_offline(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["journeys", "check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(str(DEFAULT_JOURNEYS))
    assert "every template there" in out


def _copy_with(tmp_path: Path, old: str, new: str) -> Path:
    text = DEFAULT_JOURNEYS.read_text()
    assert old in text
    path = tmp_path / "journeys.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def _line_of(path: Path, fragment: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if fragment in line)


def test_journeys_check_names_the_line_of_a_step_whose_template_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _copy_with(tmp_path, "{name: confirm,", "{name: confirm_twice,")
    assert main(["journeys", "check", str(path)]) == 1
    err = capsys.readouterr().err
    line = _line_of(path, "confirm_twice")
    assert f"{path}:{line}: journey order_confirmation step confirm_twice sends template" in err
    assert "order_confirmation.confirm_twice on email" in err


def test_journeys_check_names_the_line_of_a_mistake_in_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _copy_with(tmp_path, "trigger: PAYMENT_FAILED", "trigger: PAYMENT_FAILD")
    assert main(["journeys", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("aftercare: ")
    assert f"{path}:{_line_of(path, 'PAYMENT_FAILD')}" in err
    assert "Traceback" not in err


def test_journeys_check_follows_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _copy_with(tmp_path, "{name: confirm,", "{name: confirm_twice,")
    monkeypatch.setenv("AFTERCARE_JOURNEYS_FILE", str(path))
    assert main(["journeys", "check"]) == 1
    assert str(path) in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("KAFKA_BOOTSTRAP_SERVERS", "host:port", "is not a TCP port"),
        ("KAFKA_BOOTSTRAP_SERVERS", "localhost", "has no port"),
        ("AFTERCARE_SESSION_TIMEOUT_SECONDS", "3", "from 6 to 1800"),
        ("AFTERCARE_BIND_ADDRESS", "every interface", "is not an address to listen on"),
        ("AFTERCARE_LOG_FORMAT", "xml", "text or json"),
    ],
)
def test_a_bad_setting_is_one_line_from_any_command(
    name: str,
    value: str,
    words: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(name, value)
    for command in (["config"], ["topics", "check"], ["worker"], ["senders"]):
        assert main(command) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert err.startswith(f"aftercare: {name}")
        assert words in err


@pytest.mark.parametrize("command", ["worker", "senders"])
def test_a_step_without_its_template_stops_the_worker_and_senders_before_they_connect(
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _copy_with(tmp_path, "{name: confirm,", "{name: confirm_twice,")
    monkeypatch.setenv("AFTERCARE_JOURNEYS_FILE", str(path))
    assert main([command]) == 1  # no broker listens on OFFLINE's address: it never got that far
    err = capsys.readouterr().err
    assert f"{path}:{_line_of(path, 'confirm_twice')}: journey order_confirmation" in err
    assert "Kafka" not in err
    assert "Traceback" not in err
