"""Where the files that live beside the code are: the Avro schemas and the local broker's POM.

In a checkout (and an editable install) they are the top-level ``schemas/`` and ``deploy/kafka/``;
an installed wheel carries copies under ``pipeline/_bundled/``.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _first_existing(*candidates: Path) -> Path:
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        "none of these folders exists: "
        + ", ".join(str(c) for c in candidates)
        + " (a broken install: reinstall the aftercare package)"
    )


def schemas_dir() -> Path:
    return _first_existing(_PACKAGE / "_bundled" / "schemas", _PACKAGE.parent / "schemas")


def kafka_deploy_dir() -> Path:
    return _first_existing(_PACKAGE / "_bundled" / "kafka", _PACKAGE.parent / "deploy" / "kafka")
