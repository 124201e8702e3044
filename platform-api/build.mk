# platform-api/: cn2-platform, the seller REST API behind the edge.
PLATFORM_SRC := $(filter-out platform-api/main.c,$(wildcard platform-api/*.c))
PLATFORM_OBJ := $(PLATFORM_SRC:%.c=$(B)/%.o)
PLATFORM_LIB := $(B)/libplatform.a
DEPS += $(PLATFORM_OBJ:.o=.d) $(B)/platform-api/main.d
BINS += $(B)/bin/cn2-platform

$(PLATFORM_LIB): $(PLATFORM_OBJ)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

$(B)/bin/cn2-platform: $(B)/platform-api/main.o $(PLATFORM_LIB) $(COMMON_LIB)
	$(call link)
