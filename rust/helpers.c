// SPDX-License-Identifier: GPL-2.0
/*
 * C shims for the Rust dmirror driver (see helpers.h). Nothing here holds
 * driver logic: every function wraps one static inline function or macro of
 * the kernel headers, or reads/writes a field inside a struct page/folio
 * union, so that Rust can call it.
 */
#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/hmm.h>
#include <linux/memremap.h>
#include <linux/migrate.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/pagemap.h>
#include <linux/topology.h>

#include "helpers.h"

struct page *dmirror_pfn_to_page(unsigned long pfn)
{
	return pfn_to_page(pfn);
}

unsigned long dmirror_page_to_pfn(const struct page *page)
{
	return page_to_pfn(page);
}

struct folio *dmirror_page_folio(struct page *page)
{
	return page_folio(page);
}

unsigned int dmirror_folio_order(struct folio *folio)
{
	return folio_order(folio);
}

bool dmirror_folio_test_large(struct folio *folio)
{
	return folio_test_large(folio);
}

void dmirror_folio_put(struct folio *folio)
{
	folio_put(folio);
}

void dmirror_put_page(struct page *page)
{
	put_page(page);
}

void dmirror_lock_page(struct page *page)
{
	lock_page(page);
}

void dmirror_unlock_page(struct page *page)
{
	unlock_page(page);
}

bool dmirror_trylock_page(struct page *page)
{
	return trylock_page(page);
}

struct dev_pagemap *dmirror_page_pgmap(const struct page *page)
{
	return page_pgmap(page);
}

bool dmirror_is_device_private_page(const struct page *page)
{
	return is_device_private_page(page);
}

bool dmirror_is_device_coherent_page(const struct page *page)
{
	return is_device_coherent_page(page);
}

bool dmirror_is_zone_device_page(const struct page *page)
{
	return is_zone_device_page(page);
}

bool dmirror_is_zero_pfn(unsigned long pfn)
{
	return is_zero_pfn(pfn);
}

void *dmirror_page_zone_device_data(const struct page *page)
{
	return page->zone_device_data;
}

void dmirror_page_set_zone_device_data(struct page *page, void *data)
{
	page->zone_device_data = data;
}

void *dmirror_folio_zone_device_data(const struct folio *folio)
{
	return folio_zone_device_data(folio);
}

unsigned long dmirror_migrate_pfn(unsigned long pfn)
{
	return migrate_pfn(pfn);
}

struct page *dmirror_migrate_pfn_to_page(unsigned long mpfn)
{
	return migrate_pfn_to_page(mpfn);
}

struct page *dmirror_hmm_pfn_to_page(unsigned long hmm_pfn)
{
	return hmm_pfn_to_page(hmm_pfn);
}

unsigned int dmirror_hmm_pfn_to_map_order(unsigned long hmm_pfn)
{
	return hmm_pfn_to_map_order(hmm_pfn);
}

void dmirror_mmu_interval_set_seq(struct mmu_interval_notifier *mni,
				  unsigned long cur_seq)
{
	mmu_interval_set_seq(mni, cur_seq);
}

bool dmirror_mmu_interval_read_retry(struct mmu_interval_notifier *mni,
				     unsigned long seq)
{
	return mmu_interval_read_retry(mni, seq);
}

bool dmirror_mmu_notifier_range_blockable(const struct mmu_notifier_range *range)
{
	return mmu_notifier_range_blockable(range);
}

void dmirror_memcpy_page_to(struct page *page, const char *from)
{
	memcpy_to_page(page, 0, from, PAGE_SIZE);
}

void dmirror_memcpy_page_from(char *to, struct page *page)
{
	memcpy_from_page(to, page, 0, PAGE_SIZE);
}

void dmirror_copy_highpage(struct page *to, struct page *from)
{
	copy_highpage(to, from);
}

void dmirror_clear_highpage(struct page *page)
{
	clear_highpage(page);
}

void dmirror_zone_device_folio_init(struct folio *folio,
				    struct dev_pagemap *pgmap,
				    unsigned int order)
{
	zone_device_folio_init(folio, pgmap, order);
}

struct folio *dmirror_folio_alloc(gfp_t gfp, unsigned int order)
{
	return folio_alloc(gfp, order);
}

struct folio *dmirror_vma_alloc_folio(gfp_t gfp, unsigned int order,
				      struct vm_area_struct *vma,
				      unsigned long addr)
{
	return vma_alloc_folio(gfp, order, vma, addr);
}

struct page *dmirror_alloc_page(gfp_t gfp)
{
	return alloc_page(gfp);
}

struct page *dmirror_alloc_page_vma(gfp_t gfp, struct vm_area_struct *vma,
				    unsigned long addr)
{
	return alloc_page_vma(gfp, vma, addr);
}

int dmirror_numa_node_id(void)
{
	return numa_node_id();
}

void dmirror_split_backing_head(struct folio *rfolio)
{
	folio_reset_order(rfolio);
	rfolio->mapping = NULL;
	folio_set_count(rfolio, 1);
}

void dmirror_split_backing_tail(struct folio *head, struct folio *tail,
				struct page *rpage_tail, void *rpage_data)
{
	tail->page.zone_device_data = rpage_tail;
	rpage_tail->zone_device_data = rpage_data;
	clear_compound_head(rpage_tail);
	rpage_tail->mapping = NULL;
	folio_page(tail, 0)->mapping = folio_page(head, 0)->mapping;
	tail->pgmap = head->pgmap;
	folio_set_count(page_folio(rpage_tail), 1);
}
