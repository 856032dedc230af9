# SPDX-License-Identifier: GPL-2.0
# Flags for the static guest programs of selftests/ and bench/, included by
# their Makefiles. Set by scripts/build-tests.sh:
#   KSRC=<kernel tree> KHDR=<installed UAPI headers> OUTDIR=<output folder>
# kselftest_harness.h and lib/test_hmm_uapi.h come from KSRC, never copied.

KSRC ?= $(error KSRC is not set)
KHDR ?= $(error KHDR is not set)
OUTDIR ?= .

CC ?= gcc
CFLAGS += -static -O2 -Wall -Wextra -Wno-unused-parameter \
	-I$(KSRC)/tools/testing/selftests -I$(KSRC) -I$(KHDR) \
	-isystem $(KSRC)/tools/include/uapi
LDLIBS += -lpthread
