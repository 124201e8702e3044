# router/: cn2-router. main.c wires the skeleton; the work is in the other files,
# which also form an archive the unit tests link against.
ROUTER_SRC := $(filter-out router/main.c,$(wildcard router/*.c))
ROUTER_OBJ := $(ROUTER_SRC:%.c=$(B)/%.o)
ROUTER_LIB := $(B)/librouter.a
DEPS += $(ROUTER_OBJ:.o=.d) $(B)/router/main.d
BINS += $(B)/bin/cn2-router

$(ROUTER_LIB): $(ROUTER_OBJ)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

$(B)/bin/cn2-router: $(B)/router/main.o $(ROUTER_LIB) $(COMMON_LIB)
	$(call link)
