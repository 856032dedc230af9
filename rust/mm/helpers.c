// SPDX-License-Identifier: GPL-2.0
/*
 * C shims for the Rust mm abstractions (see helpers.h). Nothing here holds
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

struct page *rust_mm_pfn_to_page(unsigned long pfn)
{
	return pfn_to_page(pfn);
}

unsigned long rust_mm_page_to_pfn(const struct page *page)
{
	return page_to_pfn(page);
}

struct page *rust_mm_vmemmap(void)
{
#ifdef CONFIG_SPARSEMEM_VMEMMAP
	return vmemmap;
#else
	return NULL;
#endif
}

struct folio *rust_mm_page_folio(struct page *page)
{
	return page_folio(page);
}

unsigned int rust_mm_folio_order(struct folio *folio)
{
	return folio_order(folio);
}

bool rust_mm_folio_test_large(struct folio *folio)
{
	return folio_test_large(folio);
}

void rust_mm_folio_put(struct folio *folio)
{
	folio_put(folio);
}

void rust_mm_put_page(struct page *page)
{
	put_page(page);
}

void rust_mm_lock_page(struct page *page)
{
	lock_page(page);
}

void rust_mm_unlock_page(struct page *page)
{
	unlock_page(page);
}

bool rust_mm_trylock_page(struct page *page)
{
	return trylock_page(page);
}

struct dev_pagemap *rust_mm_page_pgmap(const struct page *page)
{
	return page_pgmap(page);
}

bool rust_mm_is_device_private_page(const struct page *page)
{
	return is_device_private_page(page);
}

bool rust_mm_is_device_coherent_page(const struct page *page)
{
	return is_device_coherent_page(page);
}

bool rust_mm_is_zone_device_page(const struct page *page)
{
	return is_zone_device_page(page);
}

bool rust_mm_is_zero_pfn(unsigned long pfn)
{
	return is_zero_pfn(pfn);
}

unsigned long rust_mm_zero_pfn_first(void)
{
	return zero_pfn(0);
}

unsigned long rust_mm_zero_pfn_extra(void)
{
#ifdef __HAVE_COLOR_ZERO_PAGE
	return zero_page_mask >> PAGE_SHIFT;
#else
	return 0;
#endif
}

void *rust_mm_page_zone_device_data(const struct page *page)
{
	return page->zone_device_data;
}

void rust_mm_page_set_zone_device_data(struct page *page, void *data)
{
	page->zone_device_data = data;
}

void *rust_mm_folio_zone_device_data(const struct folio *folio)
{
	return folio_zone_device_data(folio);
}

unsigned long rust_mm_migrate_pfn(unsigned long pfn)
{
	return migrate_pfn(pfn);
}

void rust_mm_mmu_interval_set_seq(struct mmu_interval_notifier *mni,
				  unsigned long cur_seq)
{
	mmu_interval_set_seq(mni, cur_seq);
}

bool rust_mm_mmu_interval_read_retry(struct mmu_interval_notifier *mni,
				     unsigned long seq)
{
	return mmu_interval_read_retry(mni, seq);
}

bool rust_mm_mmu_notifier_range_blockable(const struct mmu_notifier_range *range)
{
	return mmu_notifier_range_blockable(range);
}

void rust_mm_memcpy_page_to(struct page *page, const char *from)
{
	memcpy_to_page(page, 0, from, PAGE_SIZE);
}

void rust_mm_memcpy_page_from(char *to, struct page *page)
{
	memcpy_from_page(to, page, 0, PAGE_SIZE);
}

void rust_mm_copy_highpage(struct page *to, struct page *from)
{
	copy_highpage(to, from);
}

void rust_mm_clear_highpage(struct page *page)
{
	clear_highpage(page);
}

void rust_mm_zone_device_folio_init(struct folio *folio,
				    struct dev_pagemap *pgmap,
				    unsigned int order)
{
	zone_device_folio_init(folio, pgmap, order);
}

bool rust_mm_pgmap_tryget_live(struct dev_pagemap *pgmap)
{
	return percpu_ref_tryget_live(&pgmap->ref);
}

void rust_mm_pgmap_put(struct dev_pagemap *pgmap)
{
	percpu_ref_put(&pgmap->ref);
}

struct folio *rust_mm_folio_alloc(gfp_t gfp, unsigned int order)
{
	return folio_alloc(gfp, order);
}

struct folio *rust_mm_vma_alloc_folio(gfp_t gfp, unsigned int order,
				      struct vm_area_struct *vma,
				      unsigned long addr)
{
	return vma_alloc_folio(gfp, order, vma, addr);
}

struct page *rust_mm_alloc_page(gfp_t gfp)
{
	return alloc_page(gfp);
}

struct page *rust_mm_alloc_page_vma(gfp_t gfp, struct vm_area_struct *vma,
				    unsigned long addr)
{
	return alloc_page_vma(gfp, vma, addr);
}

int rust_mm_numa_node_id(void)
{
	return numa_node_id();
}
