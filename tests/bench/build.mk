# tests/bench/: `make bench` (tests/bench/bench.sh) and its credential maker.
$(B)/bench/mkcreds: $(B)/tests/bench/mkcreds.o $(COMMON_LIB)
	$(call link)
DEPS += $(B)/tests/bench/mkcreds.d

# paybench: cn2-payments alone, challenges/s and verifications/s (tests/bench/paybench.sh).
$(B)/bench/paybench: $(B)/tests/bench/paybench.o $(COMMON_LIB)
	$(call link)
DEPS += $(B)/tests/bench/paybench.d

# router_bench: the router's QUOTE + ASSIGN cost by number of listings. It starts the
# router with the scenario harness, and lives under tests/ so the harness finds <build>/bin.
$(B)/tests/bench/router_bench: $(B)/tests/bench/router_bench.o $(B)/tests/scenario/harness.o \
		$(ROUTER_LIB) $(COMMON_LIB)
	$(call link)
DEPS += $(B)/tests/bench/router_bench.d

# ledger-bench: durable transfers/s through cn2-ledger, pipelined and one at a time.
$(B)/bench/ledger-bench: $(B)/tests/bench/ledger_bench.o $(COMMON_LIB)
	$(call link)
DEPS += $(B)/tests/bench/ledger_bench.d

bench: all $(B)/bench/mkcreds $(B)/bench/paybench $(B)/tests/bench/router_bench \
		$(B)/bench/ledger-bench
	@$(B)/bench/ledger-bench $(B)
	@tests/bench/bench.sh $(B)
	@tests/bench/paybench.sh $(B)
