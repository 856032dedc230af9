/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C shims for the Rust mm abstractions (rust/mm/): static inline functions and macros of
 * the mm headers that have no exported symbol and no helper in rust/helpers,
 * plus the field accessors of struct page/folio unions. Each is a one-line
 * wrapper with the semantics of the wrapped inline; see helpers.c.
 */
#ifndef RUST_MM_HELPERS_H
#define RUST_MM_HELPERS_H

#include <linux/types.h>

struct page;
struct folio;
struct dev_pagemap;
struct vm_area_struct;
struct mmu_interval_notifier;
struct mmu_notifier_range;

struct page *rust_mm_pfn_to_page(unsigned long pfn);
unsigned long rust_mm_page_to_pfn(const struct page *page);
struct page *rust_mm_vmemmap(void);
struct folio *rust_mm_page_folio(struct page *page);
unsigned int rust_mm_folio_order(struct folio *folio);
bool rust_mm_folio_test_large(struct folio *folio);
void rust_mm_folio_put(struct folio *folio);
void rust_mm_put_page(struct page *page);
void rust_mm_lock_page(struct page *page);
void rust_mm_unlock_page(struct page *page);
bool rust_mm_trylock_page(struct page *page);
struct dev_pagemap *rust_mm_page_pgmap(const struct page *page);
bool rust_mm_is_device_private_page(const struct page *page);
bool rust_mm_is_device_coherent_page(const struct page *page);
bool rust_mm_is_zone_device_page(const struct page *page);
bool rust_mm_is_zero_pfn(unsigned long pfn);
unsigned long rust_mm_zero_pfn_first(void);
unsigned long rust_mm_zero_pfn_extra(void);
void *rust_mm_page_zone_device_data(const struct page *page);
void rust_mm_page_set_zone_device_data(struct page *page, void *data);
void *rust_mm_folio_zone_device_data(const struct folio *folio);

unsigned long rust_mm_migrate_pfn(unsigned long pfn);

void rust_mm_mmu_interval_set_seq(struct mmu_interval_notifier *mni,
				  unsigned long cur_seq);
bool rust_mm_mmu_interval_read_retry(struct mmu_interval_notifier *mni,
				     unsigned long seq);
bool rust_mm_mmu_notifier_range_blockable(const struct mmu_notifier_range *range);

/*
 * Whole-page copies: the constant PAGE_SIZE lets the compiler emit the same
 * inline copy as lib/test_hmm.c's memcpy_from_page(ptr, page, 0, PAGE_SIZE),
 * instead of a call to the generic memcpy() (2-3 times slower under TCG).
 */
void rust_mm_memcpy_page_to(struct page *page, const char *from);
void rust_mm_memcpy_page_from(char *to, struct page *page);
void rust_mm_copy_highpage(struct page *to, struct page *from);
void rust_mm_clear_highpage(struct page *page);

void rust_mm_zone_device_folio_init(struct folio *folio,
				    struct dev_pagemap *pgmap,
				    unsigned int order);
bool rust_mm_pgmap_tryget_live(struct dev_pagemap *pgmap);
void rust_mm_pgmap_put(struct dev_pagemap *pgmap);
struct folio *rust_mm_folio_alloc(gfp_t gfp, unsigned int order);
struct folio *rust_mm_vma_alloc_folio(gfp_t gfp, unsigned int order,
				      struct vm_area_struct *vma,
				      unsigned long addr);
struct page *rust_mm_alloc_page(gfp_t gfp);
struct page *rust_mm_alloc_page_vma(gfp_t gfp, struct vm_area_struct *vma,
				    unsigned long addr);
int rust_mm_numa_node_id(void);

#endif /* RUST_MM_HELPERS_H */
