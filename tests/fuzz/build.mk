# tests/fuzz/: libFuzzer targets, built with clang straight from the sources
# each one needs (sanitizers differ from the main build, so no archives).
#
#   make fuzz                    build every target and run each one briefly
#   make fuzz FUZZ_SECONDS=600   run longer
#
# A target is tests/fuzz/<name>.c plus one $(eval) line below naming the
# common/*.c files it links. Seeds live in tests/fuzz/corpus/<name>/ and are
# only read; what the fuzzer learns goes to $(B)/fuzz/corpus/<name>/, crashes
# to $(B)/fuzz/<name>-crash-*, and a run's output to $(B)/fuzz/<name>.log.
# tests/fuzz/<name>.dict, if present, is passed as a libFuzzer dictionary.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 20
FUZZ_CFLAGS  := $(filter-out -Werror,$(WARN)) -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-D_GNU_SOURCE -I. $(PKG_CF)
FUZZ_BIN     :=

# $(call FUZZ_target,name,common sources)
define FUZZ_target
$(B)/fuzz/$(1): tests/fuzz/$(1).c $(2) $(wildcard common/*.h)
	@mkdir -p $$(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $$@ tests/fuzz/$(1).c $(2) $(LIBS)
FUZZ_BIN += $(B)/fuzz/$(1)
endef

FUZZ_HTTP_SRC := common/http.c common/utf8.c common/log.c
$(eval $(call FUZZ_target,fuzz_http_request,$(FUZZ_HTTP_SRC)))
$(eval $(call FUZZ_target,fuzz_http_response,$(FUZZ_HTTP_SRC)))
$(eval $(call FUZZ_target,fuzz_http_chunked,$(FUZZ_HTTP_SRC)))
$(eval $(call FUZZ_target,fuzz_ipc_decode,common/ipc_msg.c common/log.c))
$(eval $(call FUZZ_target,fuzz_jwt,common/jwt.c common/b64url.c common/utf8.c))
$(eval $(call FUZZ_target,fuzz_keys,platform-api/keyparse.c platform-api/terms.c common/money.c common/utf8.c common/b64url.c common/timefmt.c common/log.c))
$(eval $(call FUZZ_target,fuzz_vault_headers,vault/request.c common/http.c common/utf8.c common/log.c))
$(eval $(call FUZZ_target,fuzz_mpp,common/mpp.c common/b64url.c common/jcs.c common/utf8.c common/timefmt.c common/log.c))
$(eval $(call FUZZ_target,fuzz_hpke,common/hpke.c))
$(eval $(call FUZZ_target,fuzz_processors,$(filter-out payments/main.c,$(wildcard payments/*.c)) $(filter-out common/hpke.c,$(wildcard common/*.c))))

FUZZ_POOL_SRC := platform-api/terms.c router/select.c router/pool.c router/index.c router/score.c \
	router/limits.c common/money.c common/timefmt.c common/providers.c common/log.c
$(eval $(call FUZZ_target,fuzz_listing_terms,$(FUZZ_POOL_SRC)))
$(eval $(call FUZZ_target,fuzz_retry_after,vault/retry.c))
$(eval $(call FUZZ_target,fuzz_quota,vault/quota.c))
$(eval $(call FUZZ_target,fuzz_disputes,platform-api/disputeparse.c common/b64url.c))
$(eval $(call FUZZ_target,fuzz_webhooks,platform-api/hookparse.c common/utf8.c))
$(eval $(call FUZZ_target,fuzz_bolt11,payments/bolt11.c common/utf8.c))

fuzz: $(FUZZ_BIN)
	@set -e; for f in $(FUZZ_BIN); do \
		n=$${f##*/}; \
		mkdir -p $(B)/fuzz/corpus/$$n; \
		dict=; [ ! -f tests/fuzz/$$n.dict ] || dict=-dict=tests/fuzz/$$n.dict; \
		echo "fuzz: $$n for $(FUZZ_SECONDS)s"; \
		if ! $$f -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(B)/fuzz/$$n- $$dict \
		    $(B)/fuzz/corpus/$$n tests/fuzz/corpus/$$n > $(B)/fuzz/$$n.log 2>&1; then \
			tail -n 40 $(B)/fuzz/$$n.log; \
			echo "fuzz: $$n FAILED (see $(B)/fuzz/$$n.log)"; \
			exit 1; \
		fi; \
		grep -E '^Done [0-9]+ runs' $(B)/fuzz/$$n.log || true; \
	done
