"""What the deploy/ tests share: where the files are, how to read them, and what the product's
settings are called.

The settings come from ``pipeline.config.VARIABLES`` (each has a ``name`` and a ``secret`` flag);
if that cannot be imported or has another shape, from the ``NAME=value`` lines ``aftercare config``
prints. The three variables being added alongside these files are accepted either way.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
BASE = KUBERNETES / "base"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
DOCKERFILE = DEPLOY / "container" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
RULES = DEPLOY / "prometheus" / "rules.yml"
SYSTEMD = DEPLOY / "systemd"

# The image's user; the manifests run as it too.
IMAGE_UID = 10001

# Added to pipeline/config.py while these files were written.
NEW_VARIABLES = {"AFTERCARE_BIND_ADDRESS", "AFTERCARE_INSTANCE_ID", "AFTERCARE_LOG_FORMAT"}

# A name that holds a secret: it must never be given a literal value outside a Secret or env file.
SECRET_NAME = re.compile(r"PASSWORD|_(KEY|TOKEN|SECRET)$")

CONFIG_LINE = re.compile(r"^([A-Z][A-Z0-9_]*)=", re.MULTILINE)


@cache
def settings() -> dict[str, bool]:
    """Every setting the product reads, by name, and whether it is a secret."""
    try:
        from pipeline.config import VARIABLES

        found = {v.name: bool(getattr(v, "secret", False)) for v in VARIABLES}
    except (ImportError, AttributeError, TypeError):
        found = {name: False for name in CONFIG_LINE.findall(_aftercare_config())}
    assert len(found) > 20, f"only {len(found)} settings found: has pipeline.config changed?"
    return {**{name: False for name in NEW_VARIABLES}, **found}


def _aftercare_config() -> str:
    command = shutil.which("aftercare", path=str(Path(sys.executable).parent))
    assert command, "neither pipeline.config.VARIABLES nor the aftercare command is available"
    return subprocess.run(
        [command, "config"], capture_output=True, text=True, timeout=60, check=True
    ).stdout


def is_secret(name: str) -> bool:
    return bool(SECRET_NAME.search(name)) or settings().get(name, False)


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def read_env_file(path: Path) -> dict[str, str]:
    """A KEY=value file as compose and kustomize read it (comments and blank lines skipped)."""
    values = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f"{path.relative_to(REPO)}:{number}: not NAME=value: {line!r}"
        values[name.strip()] = value
    return values


def kustomization() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    return loaded


def manifest_files() -> list[Path]:
    """The kustomization's resources, in its order."""
    return [BASE / name for name in kustomization()["resources"]]


def example_files() -> list[Path]:
    """Manifests shipped beside the base for the user to apply or adapt (not its resources)."""
    return sorted(BASE.glob("*.example.yaml"))


def objects(paths: list[Path]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, object) for every document of every file."""
    for path in paths:
        for index, doc in enumerate(yaml_documents(path)):
            yield f"{path.relative_to(REPO)}[{index}] {doc.get('kind')}", doc


def kustomize_build() -> list[dict[str, Any]]:
    """``kubectl kustomize`` of the base; skips when kubectl is not installed."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not on PATH (its built-in kustomize builds the base)")
    result = subprocess.run(
        ["kubectl", "kustomize", str(BASE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {BASE.relative_to(REPO)}:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]
