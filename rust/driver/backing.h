/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The simulated device memory's folio surgery (driver layer, not generic
 * helpers): a device-private folio of this driver keeps its data in a system
 * "backing" folio of the same order, which must be split along with it.
 * TODO[SPLT] in docs/todo.md: with non-compound backing blocks and
 * split_page() this file would go away.
 */
#ifndef HMM_DMIRROR_RS_BACKING_H
#define HMM_DMIRROR_RS_BACKING_H

struct page;
struct folio;

void dmirror_split_backing_head(struct folio *rfolio);
void dmirror_split_backing_tail(struct folio *head, struct folio *tail,
				struct page *rpage_tail, void *rpage_data);

#endif /* HMM_DMIRROR_RS_BACKING_H */
