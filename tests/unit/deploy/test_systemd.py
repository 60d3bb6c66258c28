"""deploy/systemd: one unit per long-running process, each reading /etc/aftercare/aftercare.env,
running as its own unprivileged user with a state directory, restarted when it fails; and
``systemd-analyze verify`` accepts them when this machine has it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from tests.unit.deploy.deployfiles import SYSTEMD, is_secret, read_env_file, settings

UNITS = {
    "aftercare-worker.service": "worker",
    "aftercare-senders.service": "senders",
    "aftercare-preferences.service": "preferences-api",
}
INSTALLED = "/opt/aftercare/bin/aftercare"


def directives(path: Path) -> dict[str, list[str]]:
    """Every Key=value of a unit (sections flattened; a key may repeat, as Environment= does)."""
    found: dict[str, list[str]] = defaultdict(list)
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found[key].append(value)
    return found


def test_there_is_a_unit_for_every_long_running_process() -> None:
    assert {p.name for p in SYSTEMD.glob("*.service")} == set(UNITS)


@pytest.mark.parametrize(("unit", "command"), UNITS.items())
def test_the_unit_runs_its_process_unprivileged_with_its_settings(unit: str, command: str) -> None:
    found = directives(SYSTEMD / unit)
    environment = dict(item.split("=", 1) for item in found["Environment"])

    assert found["ExecStart"] == [f"{INSTALLED} {command}"]
    assert found["EnvironmentFile"] == ["/etc/aftercare/aftercare.env"]
    assert found["DynamicUser"] == ["yes"] or found["User"]
    (state,) = found["StateDirectory"]
    assert environment["AFTERCARE_HOME"] == f"%S/{state}"
    assert found["Restart"] == ["on-failure"]
    assert set(environment) - set(settings()) == set()
    assert not [name for name in environment if is_secret(name)]


def test_the_worker_unit_has_a_static_instance_id_per_host() -> None:
    found = directives(SYSTEMD / "aftercare-worker.service")
    environment = dict(item.split("=", 1) for item in found["Environment"])

    assert "%H" in environment["AFTERCARE_INSTANCE_ID"]


def test_the_example_environment_file_names_only_settings() -> None:
    values = read_env_file(SYSTEMD / "aftercare.env.example")

    assert set(values) - set(settings()) == set()
    assert "KAFKA_BOOTSTRAP_SERVERS" in values
    assert "AFTERCARE_PREFERENCES_KEY" in values


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_systemd_analyze_verifies_the_unit(unit: str, tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not on PATH")
    # verify checks that ExecStart's program exists: point it at this environment's aftercare.
    here = shutil.which("aftercare", path=str(Path(sys.executable).parent))
    assert here, "the aftercare command is not installed beside this Python"
    copy = tmp_path / unit
    copy.write_text((SYSTEMD / unit).read_text().replace(INSTALLED, here))

    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert str(copy) not in result.stderr, result.stderr  # warnings name the file
