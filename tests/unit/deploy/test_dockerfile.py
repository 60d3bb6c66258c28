"""deploy/container/Dockerfile read as Docker reads it (dockerfile-parse): a builder stage and a
final stage that has only the installed venv, runs as a numeric non-root user and listens on every
interface; every file it copies is in the repository and in the build context.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser

from tests.unit.deploy.deployfiles import DOCKERFILE, DOCKERIGNORE, IMAGE_UID, REPO, settings

# Variables of Python, pip and matplotlib the image sets; every other ENV is a setting of Aftercare.
RUNTIME_VARIABLES = {"PATH", "HOME", "MPLCONFIGDIR"}
RUNTIME_PREFIXES = ("PYTHON", "PIP_")


def instructions() -> list[dict[str, Any]]:
    parser = DockerfileParser(path=str(DOCKERFILE))
    structure: list[dict[str, Any]] = parser.structure
    return structure


def stages() -> list[list[dict[str, Any]]]:
    found: list[list[dict[str, Any]]] = []
    for instruction in instructions():
        if instruction["instruction"] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def final_stage() -> list[dict[str, Any]]:
    return stages()[-1]


def values(stage: list[dict[str, Any]], name: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == name]


def env_of(stage: list[dict[str, Any]]) -> dict[str, str]:
    found = {}
    for value in values(stage, "ENV"):
        for pair in shlex.split(value):
            name, _, assigned = pair.partition("=")
            found[name] = assigned
    return found


def test_there_is_a_builder_stage_and_a_final_stage() -> None:
    froms = [stage[0]["value"].split() for stage in stages()]

    assert len(froms) >= 2
    assert froms[0][-2:] == ["AS", "builder"] or froms[0][-2:] == ["as", "builder"]
    for words in froms:
        image = words[0]
        assert re.fullmatch(r"[\w./-]+:[\w.-]+", image), f"{image}: pin the base image by tag"
        assert not image.endswith(":latest")


def test_the_builder_makes_a_wheel_of_the_checkout_and_installs_it_without_extras() -> None:
    runs = " ".join(values(stages()[0], "RUN"))
    every_run = [v for stage in stages() for v in values(stage, "RUN")]

    assert "pip wheel" in runs
    assert re.search(r"pip install \S*aftercare-\*\.whl", runs)
    for run in every_run:
        if "pip install" in run:
            assert not re.search(r"\[(test|dev)", run), run
            assert not re.search(r"\s(-e|--editable)\s", run), run


def test_the_final_stage_has_only_the_venv_from_the_builder() -> None:
    copies = values(final_stage(), "COPY")
    runs = " ".join(values(final_stage(), "RUN"))

    assert copies, "the final stage copies nothing"
    assert all(copy.startswith("--from=builder ") for copy in copies), copies
    assert not re.search(r"\b(gcc|g\+\+|build-essential|make|pip install)\b", runs)


def test_the_final_stage_runs_aftercare_as_a_numeric_non_root_user() -> None:
    (user,) = values(final_stage(), "USER")
    (entrypoint,) = values(final_stage(), "ENTRYPOINT")
    exposed = {port for value in values(final_stage(), "EXPOSE") for port in value.split()}

    uid = user.split(":")[0]
    assert uid.isdigit(), f"USER {user}: a numeric uid, so runAsNonRoot can check it"
    assert int(uid) != 0, f"USER {user}: not root"
    assert int(uid) == IMAGE_UID  # what the Kubernetes manifests' runAsUser says
    assert json.loads(entrypoint) == ["aftercare"]
    assert exposed == {"6066", "6067", "6068"}


def test_the_final_stage_sets_what_a_container_needs() -> None:
    variables = env_of(final_stage())

    assert variables["AFTERCARE_BIND_ADDRESS"] == "0.0.0.0"
    assert variables["AFTERCARE_HOME"] == "/var/lib/aftercare"
    assert variables["AFTERCARE_LOG_FORMAT"] == "json"
    # The home is made for the user in the final stage.
    assert any(
        "/var/lib/aftercare" in run and str(IMAGE_UID) in run
        for run in values(final_stage(), "RUN")
    )


def test_every_variable_the_image_sets_is_a_setting_or_the_runtime_s() -> None:
    names = {name for stage in stages() for name in env_of(stage)}
    ours = {n for n in names if n not in RUNTIME_VARIABLES and not n.startswith(RUNTIME_PREFIXES)}

    assert ours - set(settings()) == set()


def ignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def in_context(path: str) -> bool:
    """Whether .dockerignore lets ``path`` into the build context (last matching pattern wins)."""
    included = True
    for pattern in ignore_patterns():
        negated = pattern.startswith("!")
        bare = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, bare) or path.startswith(bare + "/"):
            included = negated
    return included


def copy_sources() -> list[str]:
    sources = []
    for stage in stages():
        for value in values(stage, "COPY"):
            words = [w for w in shlex.split(value) if not w.startswith("--")]
            if not value.startswith("--from="):
                sources += words[:-1]
    return sources


def test_every_copied_file_exists_and_is_in_the_build_context() -> None:
    sources = copy_sources()

    assert {"pyproject.toml", "pipeline", "schemas", "deploy/kafka"} <= set(sources)
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: not in the repository"
        assert in_context(source), f"COPY {source}: .dockerignore leaves it out of the context"


@pytest.mark.parametrize("path", [".venv", "tests/unit", "bench", ".git", "pipeline/__pycache__"])
def test_the_context_leaves_out_what_the_image_does_not_need(path: str) -> None:
    assert not in_context(path)
