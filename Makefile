# The two commands of the README: `make run` and `make test`. Only Python 3.11+, git and
# make are needed; everything else comes from PyPI into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Where the workflows run in the SDK's sandbox (WORKFLOW_SANDBOX=true: the suite, or an
# operator's choice) it imports the workflow modules anew for every workflow run: without
# bytecode (PYTHONDONTWRITEBYTECODE, an editable install) it compiles them from source
# each time. An installed image has its bytecode; here it is written before a run.
COMPILE := $(BIN)/python -m compileall -q partners store workflows activities starter worker.py devstack tests
# The suite's processes run from bytecode too, and pytest keeps its assertion-rewritten
# test modules: an environment that sets PYTHONDONTWRITEBYTECODE would have each of the
# three test processes, and each sandboxed workflow run, compile them from source again.
PYTEST := PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest

.PHONY: run test check-chromium check-promtool test-fast lint style format bench bench-access bench-webhooks bench-retention bench-idle bench-scale bench-memory histories release upgrade-check screenshots lock clean

# uv (from PyPI, into the venv) installs the same wheels from the same index as pip, in a
# quarter of pip's time on a fresh clone (12 s against 45 s here, bytecode included); pip
# stays the fallback where uv cannot run.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[dev]' \
		|| $(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(COMPILE)
	$(BIN)/python -m devstack

# Test processes side by side (pytest-xdist; each starts its own servers).
TEST_PROCESSES ?= 3
# Chromium is checked (and, as root, installed) before anything else, in its first second:
# without it the browser tests would fail minutes in.
# ruff first (a second); mypy beside the tests, on CPU they leave idle while they wait on
# servers: its report comes at the end, and either failing fails the run.
test: check-chromium check-promtool style
	$(COMPILE)
	@echo "$(MYPY) (beside the tests; its report follows theirs)"
	@$(MYPY) > $(VENV)/mypy.log 2>&1 & typing=$$!; \
		$(PYTEST) -n $(TEST_PROCESSES) --maxschedchunk 1; tests=$$?; \
		wait $$typing; typed=$$?; cat $(VENV)/mypy.log; \
		test $$tests -eq 0 && test $$typed -eq 0

check-chromium:
	@bash .ci/chromium

check-promtool:
	@bash .ci/promtool

# The tests that need no real server (rules, the codec, replay, the OpenAPI document,
# compose, the benchmark's arithmetic): seconds, for every save. Which they are follows
# from the fixtures each test uses (tests/conftest.py: SERVER_FIXTURES).
test-fast: $(STAMP)
	$(COMPILE)
	$(PYTEST) -q -m "not servers"

# mypy checks in two processes (its --num-workers): 14 s instead of 22 s on a fresh clone
# here, two cores; 0.4 s more with a warm cache.
MYPY := $(BIN)/mypy --num-workers 2 .
lint: style
	$(MYPY)

style: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Records tests/histories/$(HISTORIES_INTO)/ from real runs: unreleased/ after a workflow
# change (behind workflow.patched: docs/design.md, "Releases"); a release's own folder as
# it is cut. A released folder is frozen (tests/releases.json): refused here.
HISTORIES_INTO ?= unreleased
histories: $(STAMP)
	@if grep -qs '"$(HISTORIES_INTO)"' tests/releases.json; then \
		echo "tests/histories/$(HISTORIES_INTO) is released: its histories are frozen"; exit 1; fi
	rm -rf tests/histories/$(HISTORIES_INTO)
	RECORD_HISTORIES=1 HISTORIES_INTO=$(HISTORIES_INTO) $(BIN)/python -m pytest -q tests/test_replay.py -k record
	$(BIN)/python -m pytest -q tests/test_replay.py

# Cuts release $(VERSION) (pyproject.toml already says it, CHANGELOG.md has its section):
# its histories recorded into tests/histories/$(VERSION)/, from unreleased/'s scenarios, and
# every migration and history frozen in tests/releases.json. Then commit and tag v$(VERSION).
release: $(STAMP)
	@test -n "$(VERSION)" || { echo "make release VERSION=x.y.z"; exit 1; }
	@grep -q '^version = "$(VERSION)"' pyproject.toml || { echo "pyproject.toml does not say $(VERSION)"; exit 1; }
	@grep -q '^## \[$(VERSION)\] - ' CHANGELOG.md || { echo "CHANGELOG.md has no section for $(VERSION)"; exit 1; }
	$(MAKE) histories HISTORIES_INTO=$(VERSION)
	rm -rf tests/histories/unreleased
	$(BIN)/python -m tests.helpers.releases $(VERSION)

# A released version (or any commit) upgraded to the working tree while invitations wait
# (tests/test_upgrade.py): make upgrade-check FROM=1.0.0. make test runs it from the latest release.
FROM ?=
upgrade-check: $(STAMP)
	UPGRADE_FROM=$(FROM) $(BIN)/python -m pytest -q tests/test_upgrade.py

# Re-takes the console's screenshots in docs/screenshots/ (the README shows them).
screenshots: $(STAMP)
	SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q tests/test_console.py

# The production image installs requirements.lock: exact versions with hashes of the
# service's dependencies. Refresh it after changing them in pyproject.toml.
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --generate-hashes --strip-extras --no-emit-index-url -o requirements.lock pyproject.toml

# Ours against a floor of our shape, processes apart (bench/run.py); sizes:
# make bench BENCH_ARGS="--n 60 --rate 4 --pending 10000"
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(COMPILE)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# GET /v1/access and /v1/access/check with 10,000 partners stored (bench/access.py).
bench-access: $(STAMP)
	$(COMPILE)
	$(BIN)/python -m bench.access $(BENCH_ARGS)

# The curve: 1,000 then 10,000 waiting invitations, latencies, RSS, database size (bench/scale.py).
bench-scale: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(COMPILE)
	$(BIN)/python -m bench.scale $(BENCH_ARGS)

# Where a cached waiting onboarding's memory goes, by tracemalloc (bench/memory.py).
bench-memory: $(STAMP)
	$(BIN)/python -m bench.memory $(BENCH_ARGS)

# Idle costs in Temporal Actions: webhook endpoints asleep, one enterprise's burst, a waiting invitation (bench/idle.py).
bench-idle: $(STAMP)
	$(COMPILE)
	$(BIN)/python -m bench.idle $(BENCH_ARGS)

# Retention: half of 1,000,000 events and their attempts pruned, request p99 meanwhile (bench/retention.py).
bench-retention: $(STAMP)
	$(COMPILE)
	$(BIN)/python -m bench.retention $(BENCH_ARGS)

# Webhooks: commit -> receipt p99, 10,000 events drained, a receiver's outage (bench/webhooks.py).
bench-webhooks: $(STAMP)
	$(COMPILE)
	$(BIN)/python -m bench.webhooks $(BENCH_ARGS)

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache
