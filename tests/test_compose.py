"""docker-compose.yml: no Docker engine runs here, so the file is checked as data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from partners.settings import Settings

ROOT = Path(__file__).parent.parent


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads((ROOT / "tests" / "data" / "compose-spec.json").read_text())

    jsonschema.Draft7Validator(schema).validate(_compose())


def test_app_services_set_exactly_the_settings_the_app_reads() -> None:
    compose = _compose()
    read = {name.upper() for name in Settings.model_fields} - {"DATA_DIR"}  # DATA_DIR: local run only

    for service in ("worker", "api"):
        environment = set(compose["services"][service]["environment"])
        assert environment == read, f"{service}: missing {read - environment}, unknown {environment - read}"


def test_services_waited_for_as_healthy_have_a_health_check() -> None:
    services = _compose()["services"]
    waited = {
        name
        for service in services.values()
        for name, condition in (service.get("depends_on") or {}).items()
        if condition.get("condition") == "service_healthy"
    }

    assert waited and all("healthcheck" in services[name] for name in waited)
