/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Input of the module's own bindgen run (see ../Kbuild): the mm APIs that
 * kernel::bindings does not reach (migrate.h, hmm.h, rmap.h), the constants
 * that only exist as macros, and the C shims of helpers.c. Everything else
 * (struct page, vm_area_struct, ...) comes from kernel::bindings.
 */
#include <linux/gfp.h>
#include <linux/hmm.h>
#include <linux/huge_mm.h>
#include <linux/memremap.h>
#include <linux/migrate.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/rmap.h>

#include "helpers.h"

/* Constants bindgen cannot evaluate from their macros. */
const gfp_t RUST_MM_CONST_GFP_HIGHUSER = GFP_HIGHUSER;
const gfp_t RUST_MM_CONST_GFP_HIGHUSER_MOVABLE = GFP_HIGHUSER_MOVABLE;
const gfp_t RUST_MM_CONST_GFP_NOFAIL = __GFP_NOFAIL;
const unsigned int RUST_MM_CONST_HPAGE_PMD_ORDER = HPAGE_PMD_ORDER;
const unsigned long RUST_MM_CONST_HPAGE_PMD_NR = HPAGE_PMD_NR;
const unsigned int RUST_MM_CONST_PMD_SHIFT = PMD_SHIFT;
const unsigned int RUST_MM_CONST_PUD_SHIFT = PUD_SHIFT;
const unsigned long RUST_MM_CONST_PTRS_PER_PTE = PTRS_PER_PTE;
const unsigned long RUST_MM_CONST_HMM_RANGE_DEFAULT_TIMEOUT = HMM_RANGE_DEFAULT_TIMEOUT;
const unsigned int RUST_MM_CONST_FAULT_FLAG_WRITE = FAULT_FLAG_WRITE;
const unsigned long RUST_MM_CONST_ZONES_PGSHIFT = ZONES_PGSHIFT;
const unsigned long RUST_MM_CONST_ZONES_MASK = ZONES_MASK;
const unsigned long RUST_MM_CONST_ZONE_DEVICE = ZONE_DEVICE;
