# cli/: the cn2 command (local supervisor, sellers' and buyers' tool).
CLI_SRC := $(filter-out cli/main.c,$(wildcard cli/*.c))
CLI_OBJ := $(CLI_SRC:%.c=$(B)/%.o) $(B)/cli/catalogue.o
CLI_LIB := $(B)/libcli.a
DEPS += $(CLI_OBJ:.o=.d) $(B)/cli/main.d
BINS += $(B)/bin/cn2

$(CLI_LIB): $(CLI_OBJ)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

$(B)/bin/cn2: $(B)/cli/main.o $(CLI_LIB) $(COMMON_LIB)
	$(call link)

# The provider catalogue is data; it is embedded so `cn2 init` can write it out.
$(B)/cli/catalogue.o: cli/catalogue.S vault/providers.json
	@mkdir -p $(@D)
	$(CC) -c $< -o $@
