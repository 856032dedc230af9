// SPDX-License-Identifier: GPL-2.0
/*
 * The backing-folio split of the simulated device memory, as in the
 * folio_split callback of lib/test_hmm.c (see backing.h, TODO[SPLT]).
 */
#include <linux/mm.h>
#include <linux/memremap.h>

#include "backing.h"

/* The head of a split backing folio becomes an order-0 page of its own. */
void dmirror_split_backing_head(struct folio *rfolio)
{
	folio_reset_order(rfolio);
	rfolio->mapping = NULL;
	folio_set_count(rfolio, 1);
}

/*
 * The device folio @tail is split off @head: its backing page is
 * @rpage_tail, which becomes an order-0 page holding the owner pointer
 * @rpage_data of the head's backing page.
 */
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
