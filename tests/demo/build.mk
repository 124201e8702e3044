# tests/demo/: cn2-demo-upstream, a fake OpenAI-compatible upstream for local
# use (`cn2 up`) and the scenario tests. One file, linked with common/.
DEPS += $(B)/tests/demo/upstream.d
BINS += $(B)/bin/cn2-demo-upstream

$(B)/bin/cn2-demo-upstream: $(B)/tests/demo/upstream.o $(COMMON_LIB)
	$(call link)
