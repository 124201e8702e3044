# vault/: cn2-vault. main.c wires the skeleton; the work is in the other files,
# which also form an archive the unit tests link against.
VAULT_SRC := $(filter-out vault/main.c,$(wildcard vault/*.c))
VAULT_OBJ := $(VAULT_SRC:%.c=$(B)/%.o)
VAULT_LIB := $(B)/libvault.a
DEPS += $(VAULT_OBJ:.o=.d) $(B)/vault/main.d
BINS += $(B)/bin/cn2-vault

$(VAULT_LIB): $(VAULT_OBJ)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

$(B)/bin/cn2-vault: $(B)/vault/main.o $(VAULT_LIB) $(COMMON_LIB)
	$(call link)
