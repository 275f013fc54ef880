# Every target sets up what it needs; only Python 3.10+ and make are assumed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO := demo_project

.PHONY: setup test test-chaos test-matrix test-postgres test-mysql lint format bench docs dist clean
.PHONY: migrate demo-user run-server demo demo-pushpin examples exercises example-1 example-2 example-3 example-4 example-5 test-client

setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.10+ is required, found " + sys.version.split()[0]) if sys.version_info < (3, 10) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest

# The database-heavy tests (broadcast history, stream logs, admin and its dashboard,
# commands) again on PostgreSQL at $(PGHOST) (user postgres, trust auth; it creates
# test_django_sse).
PGHOST ?= 127.0.0.1
test-postgres: setup
	SSE_TEST_POSTGRES=$(PGHOST) $(BIN)/python -m pytest -q -p no:cacheprovider \
		tests/broadcast tests/test_tracking.py tests/test_log_writes.py tests/test_admin.py tests/test_commands.py \
		tests/test_dashboard.py tests/test_dashboard_access.py \
		tests/llm/test_generation_guards.py tests/llm/test_resumable.py

# The same tests on MariaDB/MySQL at $(MYSQLHOST) (user root, no password; it creates
# test_django_sse there, replacing one a previous run left). The server needs its time
# zone tables: mariadb-tzinfo-to-sql /usr/share/zoneinfo | mysql -u root mysql (.ci/run
# loads them).
MYSQLHOST ?= 127.0.0.1
test-mysql: setup
	$(BIN)/python -m pip install --quiet -e '.[mysql]'
	SSE_TEST_MYSQL=$(MYSQLHOST) $(BIN)/python -m pytest -q -p no:cacheprovider \
		tests/broadcast tests/test_tracking.py tests/test_log_writes.py tests/test_admin.py tests/test_commands.py \
		tests/test_dashboard.py tests/test_dashboard_access.py \
		tests/llm/test_generation_guards.py tests/llm/test_resumable.py

# The chaos and soak tests (tests/chaos/, about two minutes; `make test` leaves them
# out): two uvicorn processes, a private redis-server they start and restart, and a
# PostgreSQL database of their own at $(PGHOST), created and dropped.
test-chaos: setup
	SSE_CHAOS_PGHOST=$(PGHOST) $(BIN)/python -m pytest -q -p no:cacheprovider -m chaos -s tests/chaos

# The suite again on the oldest and newest supported Python/Django pairs.
test-matrix:
	bash .ci/matrix

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy django_sse tests bench

# The docs site into build/docs/ (docs/contributing.md): warnings are errors, and a link
# to a missing page or heading anchor is a warning.
docs: setup
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	rm -rf build/docs build/doctrees
	$(BIN)/python -m sphinx -W --keep-going -q -b html -d build/doctrees docs build/docs
	@echo "The docs site: build/docs/index.html"

# The sdist and the wheel into dist/; tests/test_dist.py checks and installs them.
dist: setup
	$(BIN)/python -m pip install --quiet -e '.[dist]'
	# A stale *.egg-info/SOURCES.txt would carry files into the sdist that the package
	# configuration no longer names: build from the configuration alone.
	rm -rf dist build/lib build/bdist.* *.egg-info
	$(BIN)/python -m build --outdir dist .
	$(BIN)/python -m twine check --strict dist/*

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/idle_streams.py
	$(BIN)/python bench/idle_breakdown.py
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/fanout.py
	$(BIN)/python bench/llm_relay.py
	$(BIN)/python bench/pushpin_fanout.py
	$(BIN)/python bench/admin_scale.py

# The demo project (demo_project/): `make demo` sets up, migrates, prints a demo
# superuser's fresh password and serves the demo under daphne on $(HOST):$(PORT).
migrate: setup
	$(BIN)/python $(DEMO)/manage.py migrate

demo-user: migrate
	$(BIN)/python $(DEMO)/manage.py create_demo_user --base-url http://$(HOST):$(PORT)

# A server killed hard leaves its streams' log rows "open"; close those first. The demo
# runs without the autoreloader: its parent process kills the server at once on Ctrl+C,
# before streams can end (docs/deployment.md); --noreload ends each with "shutdown".
run-server: migrate
	$(BIN)/python $(DEMO)/manage.py sse_close_stale_logs
	$(BIN)/python $(DEMO)/manage.py runserver --noreload $(HOST):$(PORT)

demo: setup migrate demo-user run-server

# The demo behind Pushpin (docs/pushpin.md): Pushpin serves it on $(PORT) and holds the
# live room's streams; Django runs on $(DJANGO_PORT). Needs Debian's pushpin package.
DJANGO_PORT ?= 8001
demo-pushpin: setup migrate demo-user
	$(BIN)/python $(DEMO)/manage.py sse_close_stale_logs
	export DEMO_PUSHPIN_PORT=$(PORT); \
	$(BIN)/python $(DEMO)/manage.py runserver --noreload $(HOST):$(DJANGO_PORT) & \
	trap 'kill $$! 2>/dev/null' EXIT INT TERM; \
	$(BIN)/python $(DEMO)/manage.py sse_pushpin --port $(PORT) --origin 127.0.0.1:$(DJANGO_PORT)

# Each example runs headless against a real server and fails unless its events arrive.
examples: example-1 example-2 example-3 example-4 example-5 exercises

# The tutorial's exercises (docs/tutorial.md), each checked against the demo server.
exercises: setup
	$(BIN)/python $(DEMO)/run_example.py chat-endpoint
	$(BIN)/python $(DEMO)/run_example.py progress
	$(BIN)/python $(DEMO)/run_example.py multisource

example-1: setup
	$(BIN)/python $(DEMO)/run_example.py 1

example-4: setup
	$(BIN)/python $(DEMO)/run_example.py 4

example-5: setup
	$(BIN)/python $(DEMO)/run_example.py 5

# With OPENAI_API_KEY or OPENAI_BASE_URL set, a real model answers; offline, the local text source.
example-2: setup
	$(BIN)/python $(DEMO)/run_example.py 2

example-3: setup
	$(BIN)/python $(DEMO)/run_example.py 3

# The command-line client (python -m django_sse.client) against the demo server.
test-client: setup
	$(BIN)/python $(DEMO)/run_example.py client-cli

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
