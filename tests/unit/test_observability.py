"""The alert rules, the scrape config and the Grafana dashboard: valid, tested, and in step with
``pipeline/metrics.py``.

``promtool`` (from Debian's ``prometheus`` package, which ``make test`` installs) checks the rules
and the config and runs the rules' own unit tests in ``deploy/prometheus/rules.test.yml``. The rest
is plain parsing: every metric name an expression uses is one the worker or the senders expose,
every alert says what to do, and every alert is shown both firing and quiet.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest

from pipeline.metrics import SenderMetrics, WorkerMetrics

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "rules.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "rules.test.yml"
SCRAPE_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "aftercare.json"

ALERTS = {
    "AftercareTransactionalLatencyHigh",
    "AftercareConsumerLagGrowing",
    "AftercarePartitionStalled",
    "AftercareDeadLetters",
    "AftercareCircuitBreakerOpen",
    "AftercareTimersLate",
    "AftercareDeliveryFailureRatioHigh",
    "AftercareTargetDown",
}

# A metric name of ours, whole: not part of a longer name or of a recording rule's level:name:op.
METRIC_NAME = re.compile(r"(?<![\w:])aftercare_\w+(?![\w:])")
# A recording rule's name (level:metric:operations), whole.
RECORDED_NAME = re.compile(r"(?<![\w:])[a-zA-Z_]\w*:[\w:]+")
# Grafana's variables, replaced by something PromQL accepts when the expressions are checked.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$channel": ".*"}
# How a runbook points at the dashboard: "row Timers", "rows Latency and Providers".
RUNBOOK_ROWS = re.compile(r"\brows? ([A-Z]\w+(?: and [A-Z]\w+)*)")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.fail(
            "promtool is not on PATH: it comes with Debian's prometheus package, which `make test` "
            "installs (by hand: apt-get install prometheus)"
        )
    return subprocess.run(
        ["promtool", *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )


def exposed_names() -> set[str]:
    """Every sample name the worker and the senders can expose, from their ``# TYPE`` lines."""
    text = b"".join(
        generate_latest(m.registry) for m in (WorkerMetrics(), SenderMetrics())
    ).decode()
    names = set()
    for line in text.splitlines():
        if not line.startswith("# TYPE "):
            continue
        _, _, family, kind = line.split()
        if kind == "histogram":
            names |= {f"{family}_bucket", f"{family}_sum", f"{family}_count"}
        elif kind == "counter":
            names.add(family if family.endswith("_total") else f"{family}_total")
        else:
            names.add(family)
    return names


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def data_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every panel that shows data, including those inside (collapsed) rows."""
    found = []
    for panel in panels:
        if panel.get("type") == "row":
            found += data_panels(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def dashboard_expressions() -> list[str]:
    board = dashboard()
    exprs = [t["expr"] for p in data_panels(board["panels"]) for t in p.get("targets", [])]
    queries = [v["definition"] for v in board["templating"]["list"] if v["type"] == "query"]
    return exprs + queries


# -- promtool -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "path"),
    [
        (("check", "rules"), RULES),
        (("test", "rules"), RULE_TESTS),
        (("check", "config"), SCRAPE_CONFIG),
    ],
    ids=["check rules", "test rules", "check config"],
)
def test_promtool_accepts(command: tuple[str, str], path: Path) -> None:
    args = (*command, str(path.relative_to(REPO)))

    result = promtool(*args)

    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"


def test_without_promtool_the_tests_fail_and_say_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(pytest.fail.Exception, match=r"`make test` installs"):
        promtool("--version")


def test_dashboard_expressions_are_valid_promql(tmp_path: Path) -> None:
    exprs = [e for e in dashboard_expressions() if not e.startswith("label_values(")]
    for variable, value in GRAFANA_VARIABLES.items():
        exprs = [e.replace(variable, value) for e in exprs]
    as_rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:expr:{i}", "expr": e} for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    checked = tmp_path / "dashboard-expressions.yml"
    checked.write_text(yaml.safe_dump(as_rules))

    result = promtool("check", "rules", str(checked))

    assert result.returncode == 0, result.stdout + result.stderr


# -- metric names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "exprs"),
    [
        ("rules.yml", lambda: [rule["expr"] for rule in rules()]),
        ("aftercare.json", dashboard_expressions),
    ],
    ids=["rules", "dashboard"],
)
def test_every_metric_an_expression_uses_is_exposed(
    source: str, exprs: Callable[[], list[str]]
) -> None:
    used = {name for expr in exprs() for name in METRIC_NAME.findall(expr)}

    assert used, f"no aftercare_ metric found in {source}: is the name pattern still right?"
    assert used - exposed_names() == set(), f"{source} uses metrics nobody exposes"


@pytest.mark.parametrize(
    ("source", "exprs"),
    [
        ("rules.yml", lambda: [rule["expr"] for rule in rules()]),
        ("aftercare.json", dashboard_expressions),
    ],
    ids=["rules", "dashboard"],
)
def test_every_recorded_series_an_expression_uses_is_recorded(
    source: str, exprs: Callable[[], list[str]]
) -> None:
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    used = {name for expr in exprs() for name in RECORDED_NAME.findall(expr)}

    assert used - recorded == set(), f"{source} uses recorded series rules.yml does not record"


def test_exposed_names_include_every_kind_of_sample() -> None:
    names = exposed_names()

    assert {
        "aftercare_end_to_end_latency_seconds_bucket",
        "aftercare_end_to_end_latency_seconds_count",
        "aftercare_events_total",
        "aftercare_consumer_lag",
        "aftercare_touchpoints_in_flight",
    } <= names
    assert "aftercare_events_total_total" not in names


# -- alerts ---------------------------------------------------------------------------------------


def test_the_alerts_are_the_agreed_ones() -> None:
    assert {rule["alert"] for rule in alerts()} == ALERTS


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_says_what_happened_and_what_to_do(name: str) -> None:
    (rule,) = [rule for rule in alerts() if rule["alert"] == name]
    annotations = rule.get("annotations", {})

    for key in ("summary", "description", "runbook"):
        assert str(annotations.get(key, "")).strip(), f"{name} has no {key} annotation"
    assert "\n" not in annotations["runbook"].strip(), f"{name}: the runbook is one line"
    assert rule.get("labels", {}).get("severity") in {"page", "ticket"}, name


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_is_shown_firing_and_quiet_in_the_rule_tests(name: str) -> None:
    document = yaml.safe_load(RULE_TESTS.read_text())
    cases = [
        case
        for test in document["tests"]
        for case in test.get("alert_rule_test", [])
        if case["alertname"] == name
    ]

    assert cases, f"rules.test.yml has no test for {name}"
    assert any(case.get("exp_alerts") for case in cases), f"{name} is never shown firing"
    assert any(not case.get("exp_alerts") for case in cases), f"{name} is never shown quiet"
    for case in cases:
        for alert in case.get("exp_alerts") or []:
            assert set(alert.get("exp_annotations", {})) >= {"summary", "description", "runbook"}


# -- scrape config --------------------------------------------------------------------------------


def test_scrape_config_scrapes_the_worker_and_the_senders_every_5_seconds() -> None:
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    jobs = {
        job["job_name"]: (job.get("metrics_path", "/metrics"), job["static_configs"][0]["targets"])
        for job in config["scrape_configs"]
    }

    assert config["global"]["scrape_interval"] == "5s"
    assert jobs == {
        "aftercare-worker": ("/metrics", ["127.0.0.1:6066"]),
        "aftercare-senders": ("/metrics", ["127.0.0.1:6067"]),
    }
    assert config["rule_files"] == [RULES.name]  # relative to the config file
    assert all(re.fullmatch("aftercare-.*", job) for job in jobs)  # AftercareTargetDown's match


# -- dashboard ------------------------------------------------------------------------------------


def test_dashboard_imports_with_a_prometheus_datasource_input() -> None:
    board = dashboard()

    assert board["schemaVersion"] >= 39
    assert [(i["name"], i["type"], i["pluginId"]) for i in board["__inputs"]] == [
        ("DS_PROMETHEUS", "datasource", "prometheus")
    ]
    assert board["uid"] == "aftercare"  # the runbooks name it


def test_every_dashboard_panel_has_a_title_and_a_query() -> None:
    board = dashboard()
    panels = data_panels(board["panels"])
    rows = [p for p in board["panels"] if p.get("type") == "row"]

    assert panels
    for panel in panels:
        assert panel.get("title"), f"panel {panel.get('id')} has no title"
        exprs = [t.get("expr") for t in panel.get("targets", [])]
        assert any(exprs), f"panel {panel['title']!r} has no target with an expr"
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
    for row in rows:
        assert row.get("title"), f"row {row.get('id')} has no title"
    ids = [p["id"] for p in [*rows, *panels]]
    assert len(ids) == len(set(ids)), "panel ids repeat"


def test_the_runbooks_name_rows_the_dashboard_has() -> None:
    titles = {p["title"] for p in dashboard()["panels"] if p.get("type") == "row"}
    named = {
        title
        for rule in alerts()
        for listed in RUNBOOK_ROWS.findall(rule["annotations"]["runbook"])
        for title in listed.split(" and ")
    }

    assert named, "no runbook names a dashboard row: is the pattern still right?"
    assert named <= titles


def test_the_worker_says_how_many_input_records_ended_how_over_all_topics() -> None:
    metrics = WorkerMetrics()
    metrics.events.labels("purchases", "ORDER_PLACED", "used").inc(3)
    metrics.events.labels("shipments", "SHIPPED", "used").inc()
    metrics.events.labels("shipments", "SHIPPED", "stale").inc()
    metrics.events.labels("purchases", "unknown", "dead_lettered").inc(2)
    assert metrics.events_by_outcome() == {"dead_lettered": 2, "stale": 1, "used": 4}
    assert WorkerMetrics().events_by_outcome() == {}
