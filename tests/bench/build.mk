# tests/bench/: `make bench` (tests/bench/bench.sh) and its credential maker.
$(B)/bench/mkcreds: $(B)/tests/bench/mkcreds.o $(COMMON_LIB)
	$(call link)
DEPS += $(B)/tests/bench/mkcreds.d

bench: all $(B)/bench/mkcreds
	@tests/bench/bench.sh $(B)
