# edge/: cn2-edge. main.c wires the skeleton; the work is in the other files,
# which also form an archive the unit tests link against.
EDGE_SRC := $(filter-out edge/main.c,$(wildcard edge/*.c))
EDGE_OBJ := $(EDGE_SRC:%.c=$(B)/%.o)
EDGE_LIB := $(B)/libedge.a
DEPS += $(EDGE_OBJ:.o=.d) $(B)/edge/main.d
BINS += $(B)/bin/cn2-edge

$(EDGE_LIB): $(EDGE_OBJ)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

$(B)/bin/cn2-edge: $(B)/edge/main.o $(EDGE_LIB) $(COMMON_LIB)
	$(call link)
