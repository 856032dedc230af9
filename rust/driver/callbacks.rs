// SPDX-License-Identifier: GPL-2.0

//! The `dev_pagemap_ops` of the device's chunks.
//!
//! Owns the glue between a chunk's callbacks and the driver objects they
//! reach: the free path (drops the owner reference, frees the backing folio;
//! the pool takes the pages back), the CPU fault (handed to the owning
//! mirror), the folio split (splits the backing folio alike) and the eviction
//! of a chunk's pages to system memory. This module sits on top of
//! `devmem`, `owner` and `mirror`, so none of them imports another in a
//! circle.

#![allow(unsafe_code)]

use crate::{
    driver::{
        devmem::{backing_page, Chunk, ChunkData},
        mirror::Mirror,
        owner,
    },
    mm::{
        bindings,
        folio::{FolioRef, NewPage},
        memremap::{DeviceFault, PagemapOps},
        migrate::Src,
    },
};
use kernel::{ffi::c_void, prelude::*};

// TODO[SPLT]: the backing-folio split of the simulated device memory
// (rust/driver/backing.c), declared by hand: it is driver code, not part of the
// generated mm bindings.
extern "C" {
    fn dmirror_split_backing_head(rfolio: *mut c_void);
    fn dmirror_split_backing_tail(
        head: *mut c_void,
        tail: *mut c_void,
        rpage_tail: *mut c_void,
        rpage_data: *mut c_void,
    );
}

impl PagemapOps for ChunkData {
    fn folio_free(_map: &Chunk, folio: FolioRef<'_>) {
        let page = folio.head();
        let rpage = backing_page(page);
        let order = rpage.map_or(folio.order(), |r| r.folio().order());
        if let Some(r) = rpage {
            // SAFETY: TODO[PGDATA]. `r` is the owner slot of the page being freed (the head
            // of its backing folio, or the coherent page itself). The mirror's reference goes
            // before the field is reused; the last one frees the mirror, which is fine in any
            // context.
            drop(unsafe { owner::take::<Mirror>(r) });
            if r != page {
                // SAFETY: TODO[SPLT]. The backing folio of a private page is owned by that
                // page, whose last reference is gone.
                unsafe { bindings::__free_pages(r.as_ptr(), order) };
            }
        }
    }

    fn migrate_to_ram(_map: &Chunk, fault: &DeviceFault<'_>) -> bindings::vm_fault_t {
        Mirror::devmem_fault(fault)
    }

    fn folio_split(_map: &Chunk, head: FolioRef<'_>, tail: Option<FolioRef<'_>>) {
        let Some(rpage) = backing_page(head.head()) else {
            if let Some(tail) = tail {
                // SAFETY: TODO[PGDATA]. The tail is a page of our chunk being split off `head`.
                unsafe { tail.head().set_zone_device_data(core::ptr::null_mut()) };
            }
            return;
        };
        let rfolio = rpage.folio();
        let Some(tail) = tail else {
            // SAFETY: TODO[SPLT]. `rfolio` is the backing folio owned by `head`, split alike.
            unsafe { dmirror_split_backing_head(rfolio.as_ptr().cast()) };
            return;
        };
        // SAFETY: TODO[SPLT]. `tail` is being split off `head`: both are pages of the folio
        // being split, `tail` after its head page.
        let offset = unsafe { tail.head().index_from(head.head()) };
        // SAFETY: TODO[SPLT]. `tail` is a page of `head`'s folio being split, and the backing
        // folio has the order of that folio (`DmirrorDevice::alloc_page`), so `offset` is in
        // it.
        let rpage_tail = unsafe { rfolio.page(offset) };
        // SAFETY: TODO[PGDATA]. The head's owner slot holds its reference during the split;
        // the tail's slot gets a copy of the pointer below, with this new reference.
        unsafe { owner::dup::<Mirror>(rpage.zone_device_data()) };
        // SAFETY: TODO[SPLT]. `tail` is being split off `head`; `rpage_tail` is the matching
        // page of the backing folio, which the driver owns.
        unsafe {
            dmirror_split_backing_tail(
                head.as_ptr().cast(),
                tail.as_ptr().cast(),
                rpage_tail.as_ptr().cast(),
                rpage.zone_device_data(),
            )
        };
    }

    /// `dmirror_device_evict_chunk()`: migrates every device page of `map`
    /// back to system memory.
    fn evict(map: &Chunk) {
        let mut m = match map.migrate_all() {
            Ok(m) => m,
            Err(_) => {
                pr_err!("out of memory evicting a chunk\n");
                return;
            }
        };
        let (src, mut dst) = m.arrays();
        for i in 0..src.len() {
            let sp = match src.get(i) {
                Src::Device(sp) => sp,
                Src::System(_) => {
                    pr_warn!("evicting a page that is not a device page\n");
                    continue;
                }
                Src::Skip | Src::Hole { .. } => continue,
            };
            let mut order = sp.page().folio().order();
            let Some(spage) = backing_page(sp.page()) else {
                continue;
            };
            let dpage = if sp.is_large() {
                NewPage::folio_alloc(bindings::GFP_HIGHUSER_MOVABLE, order)
            } else {
                order = 0;
                NewPage::alloc_page(bindings::GFP_HIGHUSER_MOVABLE | bindings::GFP_NOFAIL)
            };
            let Some(dpage) = dpage else {
                pr_warn!("no memory to evict an order-{} folio\n", order);
                continue;
            };
            let locked = dpage.lock();
            let dfolio = locked.page().folio();
            // SAFETY: TODO[PAGECOPY]. `dfolio` is our new locked folio; `spage`'s folio is kept
            // alive by the migration (src entries are locked and referenced).
            unsafe { bindings::folio_copy(dfolio.as_ptr(), spage.folio().as_ptr()) };
            dst.set(i, locked, sp.writable(), order != 0);
        }
        m.pages();
        // Dropping `m` finalizes the migration.
    }
}
