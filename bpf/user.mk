# Builds a directory of BPF programs in cloudflare/ebpf_exporter's layout (name.bpf.c beside its
# metrics config name.yaml) into O: every name.bpf.c becomes a CO-RE object name.bpf.o (DWARF
# stripped, BTF kept), every name.yaml is copied beside it, and a prebuilt name.bpf.o without a
# name.bpf.c is copied as it is. Used by the ebpf_build role for ebpf_build_sources:
#   make -f user.mk SRC=DIR O=DIR [ARCH=x86|arm64] [INCLUDES="DIR ..."] [EXTRA_CFLAGS="..."]
# Rebuilds only what changed (headers of SRC and of INCLUDES count); `make -q` answers 1 then.

CLANG ?= clang
LLVM_STRIP ?= llvm-strip
ARCH ?= $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
SRC ?= .
O ?= .
INCLUDES ?=
EXTRA_CFLAGS ?=

SOURCES := $(wildcard $(SRC)/*.bpf.c)
BUILT := $(patsubst $(SRC)/%.bpf.c,$(O)/%.bpf.o,$(SOURCES))
PREBUILT := $(filter-out $(BUILT),$(patsubst $(SRC)/%,$(O)/%,$(wildcard $(SRC)/*.bpf.o)))
CONFIGS := $(patsubst $(SRC)/%,$(O)/%,$(wildcard $(SRC)/*.yaml))
HEADERS := $(wildcard $(SRC)/*.h) $(foreach dir,$(INCLUDES),$(wildcard $(dir)/*.h))

# the machine's own uapi headers (asm/errno.h, which libbpf's usdt.bpf.h needs), after the others
SYS_INCLUDE ?= /usr/include/$(shell uname -m)-linux-gnu

CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -I$(SRC) $(addprefix -I,$(INCLUDES)) $(EXTRA_CFLAGS) \
	$(if $(wildcard $(SYS_INCLUDE)),-idirafter $(SYS_INCLUDE))

.PHONY: all
all: $(BUILT) $(PREBUILT) $(CONFIGS)

$(BUILT): $(O)/%.bpf.o: $(SRC)/%.bpf.c $(HEADERS)
	@mkdir -p $(O)
	$(CLANG) $(CFLAGS) -c $< -o $@
	$(LLVM_STRIP) -g $@

$(PREBUILT) $(CONFIGS): $(O)/%: $(SRC)/%
	@mkdir -p $(O)
	cp $< $@
