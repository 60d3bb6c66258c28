"""deploy/compose/compose.yaml, validated against the Compose Specification's JSON schema
(schemas/compose-spec.json, vendored from compose-go: see schemas/README.md), then read the way
``docker compose up`` would use it: every dependency, file, env file, scrape target and data source
it names exists, and no secret is written in it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from tests.unit.deploy.deployfiles import (
    COMPOSE,
    DEPLOY,
    REPO,
    is_secret,
    read_env_file,
    settings,
)

SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"
HERE = COMPOSE.parent
AFTERCARE = {"topics", "sandbox", "worker", "senders", "preferences-api"}


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    given = service.get("environment", {})
    if isinstance(given, list):
        given = dict(item.split("=", 1) for item in given)
    return {name: str(value) for name, value in given.items()}


def env_files(service: dict[str, Any]) -> list[Path]:
    given = service.get("env_file", [])
    given = [given] if isinstance(given, str | dict) else given
    return [HERE / (item["path"] if isinstance(item, dict) else item) for item in given]


def mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of every volume entry, short syntax."""
    found = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        found.append((source, target))
    return found


def mounted_file(service: str, target: str) -> Path:
    """The file of this checkout a service sees at ``target``."""
    for source, mounted in mounts(services()[service]):
        if source.startswith(".") and (target == mounted or target.startswith(mounted + "/")):
            return (HERE / source / Path(target).relative_to(mounted)).resolve()
    raise AssertionError(f"{service} has nothing of this checkout mounted at {target}")


def container_ports(service: dict[str, Any]) -> set[int]:
    published = {int(str(p).rsplit(":", 1)[-1]) for p in service.get("ports", [])}
    return published | {int(p) for p in service.get("expose", [])}


# -- the schema -----------------------------------------------------------------------------------


def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_the_compose_file_follows_the_compose_specification() -> None:
    errors = sorted(validator().iter_errors(compose()), key=lambda e: list(e.path))

    assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_the_schema_rejects_what_compose_would() -> None:
    broken = compose()
    broken["services"]["worker"]["depends_onn"] = ["kafka"]

    assert not validator().is_valid(broken)


# -- what it names exists -------------------------------------------------------------------------


def test_every_dependency_is_a_service_and_the_topics_come_first() -> None:
    for name, service in services().items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services(), f"{name} depends on {dependency}, not a service"
    topics = services()["topics"]

    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert "healthcheck" in services()["kafka"]
    assert topics["command"] == ["topics", "create"]
    assert topics["restart"] == "no"
    for name in ("worker", "senders", "preferences-api"):
        condition = services()[name]["depends_on"]["topics"]["condition"]
        assert condition == "service_completed_successfully", name


def test_every_mounted_file_env_file_and_build_input_exists() -> None:
    declared = set(compose().get("volumes", {}))
    for name, service in services().items():
        for source, target in mounts(service):
            if source.startswith((".", "/")):
                assert (HERE / source).exists(), f"{name}: {source} (mounted at {target})"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
        for path in env_files(service):
            assert path.is_file(), f"{name}: env_file {path}"
        if "build" in service:
            context = (HERE / service["build"]["context"]).resolve()
            assert context == REPO
            assert (context / service["build"]["dockerfile"]).is_file()


def test_the_broker_data_and_the_worker_state_outlive_the_containers() -> None:
    declared = set(compose()["volumes"])
    worker = services()["worker"]
    state_dir = environment(worker)["AFTERCARE_STATE_DIR"]

    assert state_dir in {t for s, t in mounts(worker) if s in declared}
    kafka_env = environment(services()["kafka"])
    assert kafka_env["KAFKA_LOG_DIRS"] in {
        t for s, t in mounts(services()["kafka"]) if s in declared
    }
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert services()["kafka"]["image"].startswith("apache/kafka:")


def test_prometheus_scrapes_services_and_ports_that_exist(tmp_path: Path) -> None:
    config_path = mounted_file("prometheus", "/etc/prometheus/prometheus.yml")
    config = yaml.safe_load(config_path.read_text())
    targets = [
        t for job in config["scrape_configs"] for s in job["static_configs"] for t in s["targets"]
    ]

    assert {job["job_name"] for job in config["scrape_configs"]} == {
        "aftercare-worker",
        "aftercare-senders",
        "aftercare-preferences",
    }
    for target in targets:
        host, port = target.rsplit(":", 1)
        assert host in services(), f"scrape target {target}: no service {host}"
        assert int(port) in container_ports(services()[host]), f"scrape target {target}"
    for rule_file in config["rule_files"]:
        assert mounted_file("prometheus", f"/etc/prometheus/{rule_file}") == (
            DEPLOY / "prometheus" / "rules.yml"
        )


def test_promtool_accepts_the_compose_scrape_config(tmp_path: Path) -> None:
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not on PATH (Debian's prometheus package)")
    # As the container sees it: the config with the rules beside it.
    config_path = mounted_file("prometheus", "/etc/prometheus/prometheus.yml")
    shutil.copy(config_path, tmp_path / "prometheus.yml")
    shutil.copy(mounted_file("prometheus", "/etc/prometheus/rules.yml"), tmp_path / "rules.yml")

    result = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisions_the_prometheus_data_source_and_the_dashboard() -> None:
    grafana = services()["grafana"]
    sources = yaml.safe_load(
        mounted_file("grafana", "/etc/grafana/provisioning/datasources/prometheus.yaml").read_text()
    )
    providers = yaml.safe_load(
        mounted_file("grafana", "/etc/grafana/provisioning/dashboards/aftercare.yaml").read_text()
    )
    (source,) = sources["datasources"]
    (provider,) = providers["providers"]
    url = urlsplit(source["url"])
    dashboard_dir = provider["options"]["path"]
    dashboard_path = mounted_file("grafana", f"{dashboard_dir}/aftercare.json")
    board = json.loads(dashboard_path.read_text())
    variables = {v["name"]: v for v in board["templating"]["list"]}

    assert source["type"] == "prometheus"
    assert source["isDefault"] is True
    assert url.hostname in services()
    assert url.port in container_ports(services()[url.hostname])
    assert dashboard_path == DEPLOY / "grafana" / "aftercare.json"
    assert grafana["depends_on"]["prometheus"]
    # Provisioning does not apply __inputs: ${DS_PROMETHEUS} must be a data source variable.
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"


# -- the sandbox in place of the providers ---------------------------------------------------------


def test_the_sandbox_listens_for_the_others_and_they_send_to_it() -> None:
    sandbox = environment(services()["sandbox"])
    http_port = int(sandbox["AFTERCARE_SANDBOX_HTTP_PORT"])

    assert services()["sandbox"]["command"] == ["sandbox", "serve"]
    assert sandbox["AFTERCARE_BIND_ADDRESS"] == "0.0.0.0"
    for name in ("worker", "senders"):
        variables = environment(services()[name])
        urls = {k: v for k, v in variables.items() if k.endswith(("_BASE_URL", "_WEBHOOK_URL"))}
        assert len(urls) == 4, name
        for key, value in urls.items():
            assert (urlsplit(value).hostname, urlsplit(value).port) == ("sandbox", http_port), key
        assert variables["AFTERCARE_SMTP_HOST"] == "sandbox"
        assert variables["AFTERCARE_SMTP_PORT"] == sandbox["AFTERCARE_SANDBOX_SMTP_PORT"]
        assert variables["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_the_worker_has_a_static_instance_id_and_its_state_dir() -> None:
    variables = environment(services()["worker"])

    assert variables["AFTERCARE_INSTANCE_ID"]
    assert variables["AFTERCARE_STATE_DIR"].startswith("/var/lib/aftercare/")


# -- settings and secrets -------------------------------------------------------------------------


def test_every_variable_given_to_aftercare_is_one_of_its_settings() -> None:
    used = set()
    for name in AFTERCARE:
        service = services()[name]
        assert service["image"] == "aftercare:local", name
        used |= set(environment(service))
        for path in env_files(service):
            used |= set(read_env_file(path))

    assert used - set(settings()) == set(), "not settings of Aftercare (see `aftercare config`)"


def test_no_secret_is_written_in_the_compose_file() -> None:
    literal = [
        f"{name}: {variable}"
        for name, service in services().items()
        for variable in environment(service)
        if is_secret(variable)
    ]

    assert literal == [], "secrets come from an env_file (laptop.env), not from environment:"


def test_the_laptop_env_file_has_the_preferences_key_the_cluster_check_accepts() -> None:
    (path,) = {p for name in AFTERCARE for p in env_files(services()[name])}
    values = read_env_file(path)

    assert all(is_secret(name) for name in values), "laptop.env is for secrets only"
    assert len(values["AFTERCARE_PREFERENCES_KEY"]) >= 16
    assert (
        values["AFTERCARE_PREFERENCES_KEY"] != "sandbox-preferences-key"
    )  # refused but with the local broker
