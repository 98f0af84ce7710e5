# Thin wrapper over CMake. `make test` and `make demo` install missing Debian packages first,
# so a fresh clone needs nothing else.

BUILD        ?= build
BUILD_SAN    ?= build-sanitize
CMAKE_FLAGS  ?=
JOBS         ?= $(shell nproc 2>/dev/null || echo 2)
DEB_PACKAGES := build-essential cmake pkg-config git ca-certificates libyaml-dev \
                libcurl4-openssl-dev libjansson-dev libssl-dev libuv1-dev libcriterion-dev \
                libmicrohttpd-dev libsystemd-dev valgrind etcd-server
SUDO         := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all build deps fuzz-deps test test-sanitize fuzz demo clean format bench
FUZZ_PACKAGES := clang libclang-rt-14-dev
FUZZ_SECONDS ?= 15

all: build

# Installs only the packages that are missing; nothing happens when all are present.
deps:
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then missing="$$missing nodejs npm"; fi; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)
	cd $(BUILD) && ctest --output-on-failure -j 1

# Unit and integration tests again under ASan+UBSan (CI runs this after `make test`).
test-sanitize: deps
	cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=Debug -DIMGRECON_SANITIZE=ON -DIMGRECON_WERROR=ON
	cmake --build $(BUILD_SAN) -j $(JOBS)
	cd $(BUILD_SAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j 1 -L 'unit|integration'

# libFuzzer needs clang and its runtime; only `make fuzz` installs them.
fuzz-deps:
	@missing=""; \
	for p in $(FUZZ_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "fuzz-deps: installing$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Every libFuzzer target for FUZZ_SECONDS each (CI: 15 s; see BENCHMARKS.md for longer runs).
fuzz: deps fuzz-deps
	bash tests/fuzz/run.sh $(CURDIR)/build-fuzz $(FUZZ_SECONDS)

demo: deps build
	@bash examples/demo.sh $(BUILD)

# The plot needs gnuplot; installing it is best effort (without it the plot is skipped).
bench: deps build
	@command -v gnuplot >/dev/null 2>&1 || { echo "bench: installing gnuplot-nox for the plot"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gnuplot-nox || \
	  { $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gnuplot-nox; } || \
	  echo "bench: gnuplot unavailable; the plot will be skipped"; }
	@bash tests/bench/run.sh $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(BUILD_SAN)
