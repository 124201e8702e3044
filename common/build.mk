# common/: what two or more daemons share, as one static archive.
COMMON_SRC := $(wildcard common/*.c)
COMMON_OBJ := $(COMMON_SRC:%.c=$(B)/%.o)
COMMON_LIB := $(B)/libcn2common.a
DEPS += $(COMMON_OBJ:.o=.d)

$(COMMON_LIB): $(COMMON_OBJ)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^
