/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C shims for the Rust dmirror driver: static inline functions and macros of
 * the mm headers that have no exported symbol and no helper in rust/helpers,
 * plus the field accessors of struct page/folio unions. Each is a one-line
 * wrapper with the semantics of the wrapped inline; see helpers.c.
 */
#ifndef HMM_DMIRROR_RS_HELPERS_H
#define HMM_DMIRROR_RS_HELPERS_H

#include <linux/types.h>

struct page;
struct folio;
struct dev_pagemap;
struct vm_area_struct;
struct mmu_interval_notifier;
struct mmu_notifier_range;

struct page *dmirror_pfn_to_page(unsigned long pfn);
unsigned long dmirror_page_to_pfn(const struct page *page);
struct folio *dmirror_page_folio(struct page *page);
unsigned int dmirror_folio_order(struct folio *folio);
bool dmirror_folio_test_large(struct folio *folio);
void dmirror_folio_put(struct folio *folio);
void dmirror_put_page(struct page *page);
void dmirror_lock_page(struct page *page);
void dmirror_unlock_page(struct page *page);
bool dmirror_trylock_page(struct page *page);
struct dev_pagemap *dmirror_page_pgmap(const struct page *page);
bool dmirror_is_device_private_page(const struct page *page);
bool dmirror_is_device_coherent_page(const struct page *page);
bool dmirror_is_zone_device_page(const struct page *page);
bool dmirror_is_zero_pfn(unsigned long pfn);
void *dmirror_page_zone_device_data(const struct page *page);
void dmirror_page_set_zone_device_data(struct page *page, void *data);
void *dmirror_folio_zone_device_data(const struct folio *folio);

unsigned long dmirror_migrate_pfn(unsigned long pfn);
struct page *dmirror_migrate_pfn_to_page(unsigned long mpfn);
struct page *dmirror_hmm_pfn_to_page(unsigned long hmm_pfn);
unsigned int dmirror_hmm_pfn_to_map_order(unsigned long hmm_pfn);

void dmirror_mmu_interval_set_seq(struct mmu_interval_notifier *mni,
				  unsigned long cur_seq);
bool dmirror_mmu_interval_read_retry(struct mmu_interval_notifier *mni,
				     unsigned long seq);
bool dmirror_mmu_notifier_range_blockable(const struct mmu_notifier_range *range);

/*
 * Whole-page copies: the constant PAGE_SIZE lets the compiler emit the same
 * inline copy as lib/test_hmm.c's memcpy_from_page(ptr, page, 0, PAGE_SIZE),
 * instead of a call to the generic memcpy() (2-3 times slower under TCG).
 */
void dmirror_memcpy_page_to(struct page *page, const char *from);
void dmirror_memcpy_page_from(char *to, struct page *page);
void dmirror_copy_highpage(struct page *to, struct page *from);
void dmirror_clear_highpage(struct page *page);

void dmirror_zone_device_folio_init(struct folio *folio,
				    struct dev_pagemap *pgmap,
				    unsigned int order);
struct folio *dmirror_folio_alloc(gfp_t gfp, unsigned int order);
struct folio *dmirror_vma_alloc_folio(gfp_t gfp, unsigned int order,
				      struct vm_area_struct *vma,
				      unsigned long addr);
struct page *dmirror_alloc_page(gfp_t gfp);
struct page *dmirror_alloc_page_vma(gfp_t gfp, struct vm_area_struct *vma,
				    unsigned long addr);
int dmirror_numa_node_id(void);

/* Used only by the folio_split callback, mirroring lib/test_hmm.c. */
void dmirror_split_backing_head(struct folio *rfolio);
void dmirror_split_backing_tail(struct folio *head, struct folio *tail,
				struct page *rpage_tail, void *rpage_data);

#endif /* HMM_DMIRROR_RS_HELPERS_H */
