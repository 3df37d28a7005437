# Thin front for meson. `make demo` and `make test` work on a fresh machine.
PYTHON ?= /usr/bin/python3
BUILD ?= build
ASAN_BUILD ?= build-asan

.PHONY: all bootstrap build asan test unit-test demo bench fuzz format clean

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

unit-test: build asan
	meson test -C $(BUILD) --suite unit --print-errorlogs -q
	meson test -C $(ASAN_BUILD) --suite unit --print-errorlogs -q

# Unit tests (normal and sanitizer builds), fuzz smoke runs, the integration
# suite against the sanitizer build, then the whole integration suite against
# the normal build; pytest's summary is the last line.
test: unit-test
	./tests/fuzz/smoke.sh
	CORDON_BIN=$(CURDIR)/$(ASAN_BUILD)/cordon CORDON_ATTACKS=$(CURDIR)/$(BUILD)/tests/attacks \
	  $(PYTHON) -m pytest -q -m "not slow" -p no:cacheprovider tests/integration
	CORDON_BIN=$(CURDIR)/$(BUILD)/cordon CORDON_ATTACKS=$(CURDIR)/$(BUILD)/tests/attacks \
	  $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

demo: build
	@./scripts/demo

bench: build
	@./bench/startup
	@./bench/proxy
	@./bench/run
	@./bench/api

fuzz: bootstrap
	./tests/fuzz/smoke.sh long

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
