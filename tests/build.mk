# tests/: each tests/unit/test_<name>.c and tests/scenario/test_<name>.c is one
# cmocka program. Unit tests link every daemon's archive (static archives pull
# in only what a test uses); scenario tests also get the harness.
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/unit/%)
SCEN_SRC := $(wildcard tests/scenario/test_*.c)
SCEN_BIN := $(SCEN_SRC:tests/scenario/%.c=$(B)/tests/scenario/%)
HARNESS_SRC := $(filter-out $(SCEN_SRC),$(wildcard tests/scenario/*.c))
HARNESS_OBJ := $(HARNESS_SRC:%.c=$(B)/%.o)
TEST_LIBS := $(EDGE_LIB) $(PAYMENTS_LIB) $(ROUTER_LIB) $(VAULT_LIB) $(LEDGER_LIB) \
	$(PLATFORM_LIB) $(CLI_LIB) $(COMMON_LIB)
DEPS += $(UNIT_SRC:%.c=$(B)/%.d) $(SCEN_SRC:%.c=$(B)/%.d) $(HARNESS_OBJ:.o=.d)
TESTS += $(UNIT_BIN) $(SCEN_BIN)

$(B)/tests/unit/%: $(B)/tests/unit/%.o $(TEST_LIBS)
	$(call link,-lcmocka)

$(B)/tests/scenario/%: $(B)/tests/scenario/%.o $(HARNESS_OBJ) $(TEST_LIBS)
	$(call link,-lcmocka)
