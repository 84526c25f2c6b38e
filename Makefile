# Thin wrapper around CMake/CTest. Every target installs what is missing first.
.PHONY: all deps build test asan test-asan fuzz bench demo clean

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake --preset default >/dev/null
	@cmake --build build

test: build
	cd build && ctest --output-on-failure -j2 -LE fuzz

asan test-asan: deps
	@cmake --preset asan >/dev/null
	@cmake --build build-asan
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		ctest --output-on-failure -j2

fuzz: deps
	@cmake --preset fuzz >/dev/null
	@cmake --build build-fuzz
	cd build-fuzz && ctest --output-on-failure -L fuzz

bench: build
	bench/pack.sh
	bench/offers.sh
	bench/transfer.sh
	bench/store.sh

demo: build
	@scripts/demo.sh

clean:
	rm -rf build build-asan build-fuzz
