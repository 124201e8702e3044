# ledger/: cn2-ledger. main.c wires the skeleton; the work is in the other files,
# which also form an archive the unit tests link against.
LEDGER_SRC := $(filter-out ledger/main.c,$(wildcard ledger/*.c))
LEDGER_OBJ := $(LEDGER_SRC:%.c=$(B)/%.o)
LEDGER_LIB := $(B)/libledger.a
DEPS += $(LEDGER_OBJ:.o=.d) $(B)/ledger/main.d
BINS += $(B)/bin/cn2-ledger

$(LEDGER_LIB): $(LEDGER_OBJ)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

$(B)/bin/cn2-ledger: $(B)/ledger/main.o $(LEDGER_LIB) $(COMMON_LIB)
	$(call link)
