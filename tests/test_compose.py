"""docker-compose.yml: no Docker engine runs here, so the file is checked as data."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from partners.settings import Settings

ROOT = Path(__file__).parent.parent


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def _lines() -> list[str]:
    return (ROOT / "docker-compose.yml").read_text().splitlines()


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


def test_only_the_tls_proxy_is_published_and_operators_are_local() -> None:
    services = _compose()["services"]
    published = {name: service.get("ports", []) for name, service in services.items() if service.get("ports")}

    assert published == {
        "proxy": ["80:80", "443:443"],
        "temporal-ui": ["127.0.0.1:8233:8080"],
        "api": ["127.0.0.1:8001:8001"],  # the operators' listener, not the API's 8000
    }
    assert services["temporal-ui"]["environment"]["TEMPORAL_DISABLE_WRITE_ACTIONS"].endswith(":-true}")
    assert services["temporal-ui"]["environment"]["TEMPORAL_CODEC_ENDPOINT"] == "http://127.0.0.1:8001/codec"


def _members(compose: dict[str, Any], network: str) -> set[str]:
    return {name for name, service in compose["services"].items() if network in (service.get("networks") or [])}


def test_each_server_sits_on_an_internal_network_only_its_clients_join() -> None:
    compose = _compose()
    networks = compose["networks"]

    assert _members(compose, "data") == {"postgres", "temporal", "api", "worker"}
    assert _members(compose, "temporal") == {"temporal", "temporal-setup", "temporal-ui", "api", "worker"}
    assert _members(compose, "mail") == {"mailpit", "worker"}, "Mailpit holds every invitation link"
    assert all(networks[name]["internal"] is True for name in ("data", "temporal", "mail"))
    for server, network in (("postgres", "data"), ("mailpit", "mail")):
        assert compose["services"][server]["networks"] == [network]
    assert "default" not in networks and all(service.get("networks") for service in compose["services"].values())


def test_the_api_is_reached_over_tls_through_the_proxy_only() -> None:
    compose = _compose()
    environment = compose["x-app-environment"]
    proxy = compose["services"]["proxy"]

    assert environment["PUBLIC_BASE_URL"].startswith("https://")
    assert "reverse_proxy api:8000" in compose["configs"]["caddyfile"]["content"]
    assert environment["FORWARDED_ALLOW_IPS"] == proxy["networks"]["edge"]["ipv4_address"]
    assert _members(compose, "edge") == {"api", "proxy"}
    comments = " ".join(line.split("#", 1)[1].strip() for line in _lines() if "#" in line)
    assert "must only ever be reached through a TLS-terminating proxy" in comments, "said where an operator reads"


def test_every_variable_a_comment_names_is_one_the_file_reads() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    comments = "\n".join(line.split("#", 1)[1] for line in _lines() if "#" in line)
    named = set(re.findall(r"\b([A-Z][A-Z0-9_]{3,})=", comments))
    read = set(re.findall(r"\$\{(\w+)", text))

    assert named and named <= read, f"named but never read: {named - read}"


def test_no_secret_has_a_default() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    secrets = re.findall(r"\$\{(\w*(?:PASSWORD|TOKEN)\w*)(:?[-?])", text)

    assert secrets and all(kind == ":?" for _, kind in secrets), secrets


def test_the_service_and_temporal_use_their_own_roles_not_the_superuser() -> None:
    compose = _compose()
    roles = compose["configs"]["database-roles"]["content"]

    assert "postgresql://partners:" in compose["x-app-environment"]["DATABASE_URL"]
    assert compose["services"]["temporal"]["environment"]["POSTGRES_USER"] == "temporal"
    assert "CREATE ROLE partners LOGIN PASSWORD" in roles and "SUPERUSER" not in roles


def test_the_image_installs_exact_hashed_versions_of_every_dependency() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    lock = (ROOT / "requirements.lock").read_text()
    pinned = dict(re.findall(r"^([a-z0-9_.-]+)==(\S+) \\", lock, re.MULTILINE))
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]

    assert "pip install --require-hashes -r requirements.lock" in dockerfile
    assert "pip install --no-deps ." in dockerfile
    for requirement in declared:
        name = re.split(r"[\[<>=!~ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in pinned, f"{name} is not in requirements.lock: run make lock"
    assert lock.count("--hash=sha256:") >= len(pinned)


def test_the_api_stops_after_its_drain() -> None:
    grace = _compose()["services"]["api"]["stop_grace_period"]

    assert int(grace.rstrip("s")) > 30  # uvicorn's timeout_graceful_shutdown
