# payments/: cn2-payments. main.c wires the skeleton; the work is in the other files,
# which also form an archive the unit tests link against.
PAYMENTS_SRC := $(filter-out payments/main.c,$(wildcard payments/*.c))
PAYMENTS_OBJ := $(PAYMENTS_SRC:%.c=$(B)/%.o)
PAYMENTS_LIB := $(B)/libpayments.a
DEPS += $(PAYMENTS_OBJ:.o=.d) $(B)/payments/main.d
BINS += $(B)/bin/cn2-payments

$(PAYMENTS_LIB): $(PAYMENTS_OBJ)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

$(B)/bin/cn2-payments: $(B)/payments/main.o $(PAYMENTS_LIB) $(COMMON_LIB)
	$(call link)
