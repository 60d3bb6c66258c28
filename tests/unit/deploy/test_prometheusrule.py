"""The PrometheusRule of the Kubernetes base: generated from deploy/prometheus/rules.yml by
deploy/kubernetes/generate.py, committed, and never out of step with the rules.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.unit.deploy.deployfiles import BASE, KUBERNETES, REPO, RULES, yaml_documents

GENERATED = BASE / "prometheusrule.yaml"
REGENERATE = ".venv/bin/python deploy/kubernetes/generate.py"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate", KUBERNETES / "generate.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_prometheusrule_is_what_the_generator_writes_now() -> None:
    expected = generator().render(RULES.read_text(encoding="utf-8"))

    assert GENERATED.read_text(encoding="utf-8") == expected, (
        f"{GENERATED.relative_to(REPO)} is out of date with {RULES.relative_to(REPO)}: run "
        f"`{REGENERATE}` and commit the result"
    )


def test_its_groups_are_the_rules_file_groups() -> None:
    (rule,) = yaml_documents(GENERATED)

    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    assert rule["metadata"]["name"]
    assert set(rule["spec"]) == {"groups"}
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def test_a_changed_rule_makes_the_generator_write_something_else() -> None:
    text = RULES.read_text(encoding="utf-8")
    changed = text.replace("for: 5m", "for: 6m", 1)

    assert changed != text
    assert generator().render(changed) != GENERATED.read_text(encoding="utf-8")


def test_promtool_accepts_the_groups(tmp_path: Path) -> None:
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not on PATH (Debian's prometheus package)")
    (rule,) = yaml_documents(GENERATED)
    rules_file = tmp_path / "prometheusrule-groups.yml"
    rules_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))

    result = subprocess.run(
        ["promtool", "check", "rules", str(rules_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
