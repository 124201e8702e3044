# cn2 — one non-recursive GNU Makefile. Each folder contributes a short
# build.mk that appends to the variables below; nothing here recurses.
#
#   make            build every binary into $(B)/bin
#   make test       build, then run unit and scenario tests (ends "N passed, N failed")
#   make asan       the same binaries with AddressSanitizer + UBSan, in build/asan
#   make fuzz       build the libFuzzer targets with clang and run each briefly
#   make check      all of it: tests on the normal and the sanitizer build, and
#                   every fuzz target for CHECK_FUZZ_SECONDS; one final count
#   make run        create ./var on first start and run all daemons in the foreground
#   make bench      cn2 vs nginx vs the upstream directly: req/s, latency, CPU per request

.DEFAULT_GOAL := all
.SUFFIXES:
.DELETE_ON_ERROR:
# Keep intermediate objects: no rebuilds for nothing, and no "rm …" after the test count.
.SECONDARY:

B       ?= build
CC      ?= cc
CFLAGS  ?= -O2 -g
LDFLAGS ?=

# libuv, cJSON, SQLite and libcurl have pkg-config files in Debian 12; mbedTLS 2.28
# and nng 1.5.2 ship none there, so they are linked by name.
PKGS     := libuv libcjson sqlite3 libcurl
PKG_CF   := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS := $(shell pkg-config --libs $(PKGS))
LIBS     := $(PKG_LIBS) -lnng -lmbedtls -lmbedx509 -lmbedcrypto -lpthread -lm

WARN := -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -Wmissing-declarations -Wpointer-arith \
	-Wcast-qual -Wwrite-strings -Wformat=2 -Wformat-security -Wvla \
	-Wimplicit-fallthrough -Wundef -Wold-style-definition -Wnull-dereference \
	-Wno-unused-parameter
HARDEN := -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIE
ALL_CFLAGS   = $(WARN) $(CFLAGS) $(SANFLAGS) $(HARDEN) -MMD -MP
ALL_CPPFLAGS = -D_GNU_SOURCE -I. $(PKG_CF) $(CPPFLAGS)
ALL_LDFLAGS  = -pie -Wl,-z,relro,-z,now $(SANFLAGS) $(LDFLAGS)

ifeq ($(SAN),1)
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
HARDEN   := -fPIE
endif

BINS  :=
TESTS :=
DEPS  :=

$(B)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

# link: objects and archives in dependency order, then system libraries.
define link
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $(filter %.o %.a,$^) $(LIBS) $(1)
endef

include common/build.mk
include edge/build.mk
include payments/build.mk
include router/build.mk
include vault/build.mk
include ledger/build.mk
include platform-api/build.mk
include cli/build.mk
include tests/build.mk
include tests/demo/build.mk
include systemd/build.mk
include tests/fuzz/build.mk
include tests/bench/build.mk

all: $(BINS)

asan:
	$(MAKE) B=build/asan SAN=1 CFLAGS='-O1 -g' all tests

tests: $(TESTS)

test: all tests
	@tests/run.sh $(B)

CHECK_FUZZ_SECONDS ?= 15
check: all tests $(FUZZ_BIN)
	$(MAKE) B=build/asan SAN=1 CFLAGS='-O1 -g' all tests
	@FUZZ_SECONDS=$(CHECK_FUZZ_SECONDS) tests/run.sh $(B) build/asan

run: all
	@$(B)/bin/cn2 up --dir var

clean:
	rm -rf build

.PHONY: all asan tests test check run clean fuzz bench

-include $(DEPS)
