# Thin front for meson. `make demo` and `make test` work on a fresh machine.
PYTHON ?= /usr/bin/python3
BUILD ?= build
ASAN_BUILD ?= build-asan

.PHONY: all bootstrap build asan deb test test-all test-v2 unit-test check coverage demo bench fuzz format clean

all: build

bootstrap:
	@./scripts/bootstrap

$(BUILD)/build.ninja:
	meson setup $(BUILD) >/dev/null

build: bootstrap $(BUILD)/build.ninja
	@ninja -C $(BUILD) >/dev/null

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false -Dtest_faults=true >/dev/null

asan: bootstrap $(ASAN_BUILD)/build.ninja
	@ninja -C $(ASAN_BUILD) >/dev/null

# The Debian package dist/cordon_VERSION_ARCH.deb (scripts/make-deb,
# docs/deploy.md), built in its own build directory (prefix /usr).
DEB_BUILD ?= build-deb
deb: bootstrap
	BUILD=$(DEB_BUILD) ./scripts/make-deb

# CORDON_REQUIRE_PG=1: the store's tests against Postgres (store-pg) fail
# rather than skip when the server binaries are missing.
unit-test: build asan
	CORDON_REQUIRE_PG=1 meson test -C $(BUILD) --suite unit --print-errorlogs -q
	CORDON_REQUIRE_PG=1 meson test -C $(ASAN_BUILD) --suite unit --print-errorlogs -q

# Unit tests (normal and sanitizer builds), fuzz smoke runs, the whole
# integration suite but its slow tests against the sanitizer build, then,
# against the normal build (the binary users run: _FORTIFY_SOURCE, no test
# fault switches), the slow tests and the suites that attack it or run what
# the docs tell users to run (RELEASE_SUITES), these through warm sandboxes
# (CORDON_SANDBOX_WARM=1: every sandbox made ahead, then given its run), so
# the attacks run against both starts. Each test runs once against the
# sanitizers; the whole run fits CI's 15 minutes. `make test-all` runs
# every integration test against the normal build too.
RELEASE_SUITES = test_attacks.py test_egress_attacks.py test_sealed_echoes.py test_exec.py \
	test_teardown.py test_docs.py test_cli.py
test: unit-test
	./tests/fuzz/smoke.sh
	CORDON_REQUIRE_PG=1 CORDON_BIN=$(CURDIR)/$(ASAN_BUILD)/cordon CORDON_ATTACKS=$(CURDIR)/$(BUILD)/tests/attacks \
	  PYTHON=$(PYTHON) ./tests/integration/run-lanes.sh -q -m "not slow" -p no:cacheprovider
	CORDON_BIN=$(CURDIR)/$(BUILD)/cordon CORDON_ATTACKS=$(CURDIR)/$(BUILD)/tests/attacks \
	  PYTHON=$(PYTHON) ./tests/integration/run-slow.sh
	CORDON_SANDBOX_WARM=1 CORDON_BIN=$(CURDIR)/$(BUILD)/cordon CORDON_ATTACKS=$(CURDIR)/$(BUILD)/tests/attacks \
	  $(PYTHON) -m pytest -q -m "not slow" -p no:cacheprovider \
	  $(addprefix tests/integration/,$(RELEASE_SUITES))

test-all: unit-test
	CORDON_BIN=$(CURDIR)/$(BUILD)/cordon CORDON_ATTACKS=$(CURDIR)/$(BUILD)/tests/attacks \
	  $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

# The sandbox's essential suites again, on cgroup v2 and Debian 12's own
# kernel (6.1, Landlock ABI 2), in a throwaway QEMU guest that shares this
# machine's root read-only (../shared/vm/run-in-vm; needs root). This host is
# cgroup v1, so only here do clone3(CLONE_INTO_CGROUP), memory.max, pids.max,
# cpu.max and memory.peak run. CORDON_TEST_V2=1 turns test_v2.py's skips
# into failures; CORDON_HOSTID_BASE and the rest of the environment carry
# over into the guest.
RUN_IN_VM ?= $(CURDIR)/../shared/vm/run-in-vm
# Then the cgroup suite again through warm sandboxes, whose cgroup v2
# limits are written after the clone into it (make test's release pass runs
# the attack suites through warm sandboxes on this host).
V2_SUITES = test_v2.py test_landlock_abi.py test_exec.py test_attacks.py test_teardown.py \
	test_rootless.py
V2_WARM_SUITES = test_v2.py
test-v2: build
	CORDON_TEST_V2=1 CORDON_BIN=$(CURDIR)/$(BUILD)/cordon CORDON_ATTACKS=$(CURDIR)/$(BUILD)/tests/attacks \
	  bash $(RUN_IN_VM) --mem 2G -- sh -c '$(PYTHON) -m pytest -q -p no:cacheprovider \
	  $(addprefix tests/integration/,$(V2_SUITES)) && CORDON_SANDBOX_WARM=1 $(PYTHON) -m pytest -q \
	  -p no:cacheprovider $(addprefix tests/integration/,$(V2_WARM_SUITES))'

# The static analyzers (clang-tidy and gcc -fanalyzer) against the reviewed
# baseline tests/check/baseline.txt: a new finding fails.
check: bootstrap
	./scripts/check

# A line-coverage report (gcovr) of the unit tests, in build-coverage/.
# These files must stay covered line for line.
COVERAGE_FULL ?= src/egress/decide.c
coverage: bootstrap
	COVERAGE_FULL="$(COVERAGE_FULL)" ./scripts/coverage

demo: build
	@./scripts/demo

bench: build
	@./bench/startup
	@./bench/proxy
	@./bench/run
	@./bench/api
	@./bench/warm
	@./bench/deps
	@./bench/soak

fuzz: bootstrap
	./tests/fuzz/smoke.sh long

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(DEB_BUILD) dist build-fuzz build-check build-analyzer build-coverage
