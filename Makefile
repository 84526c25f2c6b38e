# Thin wrapper around CMake/CTest. Every target installs what is missing first.
.PHONY: all deps build test asan test-asan fuzz bench demo install uninstall clean

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

# `make install PREFIX=$HOME/.local` puts ferry on a PATH of your own.
PREFIX ?= /usr/local
install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0755 build/ferry $(DESTDIR)$(PREFIX)/bin/ferry
	install -m 0644 docs/ferry.1 $(DESTDIR)$(PREFIX)/share/man/man1/ferry.1

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/ferry $(DESTDIR)$(PREFIX)/share/man/man1/ferry.1

clean:
	rm -rf build build-asan build-fuzz
