"""Writes base/prometheusrule.yaml from deploy/prometheus/rules.yml, which stays the one source of
Aftercare's alert and recording rules (promtool checks and tests it there). Run it after changing
the rules, from anywhere:

    .venv/bin/python deploy/kubernetes/generate.py

tests/unit/deploy checks that the committed file is what this writes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE.parent / "prometheus" / "rules.yml"
OUTPUT = HERE / "base" / "prometheusrule.yaml"

HEADER = """\
# GENERATED from deploy/prometheus/rules.yml by deploy/kubernetes/generate.py: do not edit; change
# the rules there and run `.venv/bin/python deploy/kubernetes/generate.py`.
# For the Prometheus Operator. If your Prometheus selects rules by label (kube-prometheus-stack:
# release: <its release>), add that label in an overlay.
"""


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (the expressions), so the output reads like rules.yml."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def prometheus_rule(rules_text: str) -> dict[str, Any]:
    """The PrometheusRule object whose groups are exactly those of rules.yml."""
    groups = yaml.safe_load(rules_text)["groups"]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "aftercare",
            "labels": {"app.kubernetes.io/name": "aftercare"},
        },
        "spec": {"groups": groups},
    }


def render(rules_text: str) -> str:
    body = yaml.dump(
        prometheus_rule(rules_text),
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )
    return HEADER + body


def main() -> int:
    OUTPUT.write_text(render(RULES.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(HERE.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
