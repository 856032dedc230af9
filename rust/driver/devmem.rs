// SPDX-License-Identifier: GPL-2.0

//! The simulated device memory of one dmirror device.
//!
//! Owns the device's [`DevicePool`] (256 MiB chunks, mapped on demand; one
//! fixed chunk for coherent memory) and device page allocation, with the
//! system "backing" folio of a private page in its `zone_device_data`. The
//! pool's callbacks, the eviction of a chunk among them, are in
//! `callbacks.rs`.

#![allow(unsafe_code)]

use crate::{
    driver::uapi::MemoryType,
    mm::{
        bindings,
        folio::{LockedPage, NewPage, PageRef},
        memremap::{ChunkKind, DevPagemap},
        pool::{DevicePool, FreePage},
    },
};
use kernel::{ffi::c_void, prelude::*};

/// `DEVMEM_CHUNK_SIZE`.
pub(crate) const DEVMEM_CHUNK_SIZE: usize = 256 * 1024 * 1024;
/// `HPAGE_PMD_ORDER`.
pub(crate) const HPAGE_PMD_ORDER: u32 = bindings::HPAGE_PMD_ORDER;
/// `HPAGE_PMD_NR`.
pub(crate) const HPAGE_PMD_NR: usize = bindings::HPAGE_PMD_NR;

/// Per-chunk data reached from the pagemap callbacks: none; the type carries
/// the callbacks (`callbacks.rs`).
pub(crate) struct ChunkData;

/// A chunk of device memory.
pub(crate) type Chunk = DevPagemap<ChunkData>;

/// The system page in which an allocated private page of ours keeps its data;
/// the page itself for coherent memory (`BACKING_PAGE()`).
///
/// Works for any page of a large private folio too: only the head's
/// `zone_device_data` points to the backing folio (which has the same order),
/// so a tail's backing page is found at the same offset in it.
pub(crate) fn backing_page(page: PageRef<'_>) -> Option<PageRef<'_>> {
    if !page.is_device_private() {
        return Some(page);
    }
    let (folio, k) = page.folio_and_index();
    // SAFETY: TODO[BACKING]. The `zone_device_data` of the head of an allocated private folio of
    // ours is the head of its backing folio (`DmirrorDevice::alloc_page`, kept by `folio_split`).
    let rhead = unsafe { PageRef::from_raw(folio.zone_device_data().cast()) }?;
    // SAFETY: TODO[BACKING]. The backing folio has the order of `folio`, so the offset is inside
    // it.
    Some(unsafe { rhead.nth(k) })
}

/// One dmirror device: its memory type and its device memory.
#[pin_data]
pub(crate) struct DmirrorDevice {
    mtype: MemoryType,
    spm_addr: u64,
    #[pin]
    pool: DevicePool<ChunkData>,
}

impl DmirrorDevice {
    /// A device without memory yet.
    pub(crate) fn new(mtype: MemoryType, spm_addr: u64) -> impl PinInit<Self> {
        pin_init!(Self {
            mtype,
            spm_addr,
            pool <- DevicePool::new(),
        })
    }

    /// Whether `page` is a device page of this device.
    pub(crate) fn owns_page(&self, page: PageRef<'_>) -> bool {
        self.pool.owns(page)
    }

    /// The device's memory type.
    pub(crate) fn mtype(&self) -> MemoryType {
        self.mtype
    }

    /// The `pgmap_owner` / `dev_private_owner` cookie.
    pub(crate) fn owner(&self) -> *const c_void {
        core::ptr::from_ref(self).cast()
    }

    /// `dmirror_allocate_chunk()`: maps one more chunk, fills the free lists
    /// and, if `want` is `Some(is_large)`, takes one page (or PMD block) from them.
    ///
    /// Every PMD-aligned block of the chunk goes on the block list (order-0
    /// requests split blocks on demand), whatever the request that created it.
    /// A coherent device has exactly one chunk, its SPM range: once mapped,
    /// it is never mapped again (`ENOMEM`), unlike the C driver, which retries
    /// `memremap_pages()` on the same range.
    pub(crate) fn allocate_chunk(
        &self,
        want: Option<bool>,
    ) -> Result<Option<FreePage<'_, ChunkData>>> {
        let (kind, max_maps) = match self.mtype {
            MemoryType::Private => (
                ChunkKind::Private {
                    size: DEVMEM_CHUNK_SIZE,
                },
                usize::MAX,
            ),
            MemoryType::Coherent => (
                ChunkKind::Coherent {
                    start: self.spm_addr as usize,
                    size: DEVMEM_CHUNK_SIZE,
                },
                1,
            ),
        };
        let (added, page) = self.pool.add(
            kind,
            c"hmm_dmirror",
            self.owner(),
            ChunkData,
            max_maps,
            want,
        )?;
        pr_info!(
            "added new {} MB chunk (total {} chunks, {} MB) PFNs [0x{:x} 0x{:x})\n",
            DEVMEM_CHUNK_SIZE / (1024 * 1024),
            added.maps,
            added.maps * (DEVMEM_CHUNK_SIZE / (1024 * 1024)),
            added.pfn_first,
            added.pfn_last
        );
        Ok(page)
    }

    /// `dmirror_devmem_alloc_page()`: a device page (or PMD folio) initialised
    /// with `zone_device_folio_init()`, hence locked with one reference, with its
    /// backing folio for private memory.
    pub(crate) fn alloc_page(&self, is_large: bool) -> Option<LockedPage> {
        if is_large && self.mtype == MemoryType::Coherent {
            // No PMD folios of coherent memory: the callers fall back to order-0
            // pages, so a THP moves as 512 base pages.
            return None;
        }
        let order = if is_large { HPAGE_PMD_ORDER } else { 0 };
        let rpage = if self.mtype == MemoryType::Private {
            let r = NewPage::folio_alloc(bindings::GFP_HIGHUSER, order)?;
            // SAFETY: TODO[PGDATA]. The backing folio is ours; its head is the owner slot of the
            // new page, which points to no mirror yet (`owner`).
            unsafe { r.page().set_zone_device_data(core::ptr::null_mut()) };
            Some(r)
        } else {
            None
        };
        let free = match self.pool.alloc(is_large) {
            Some(p) => p,
            None => self.allocate_chunk(Some(is_large)).ok().flatten()?,
        };
        // The backing folio goes in before the page gets its first reference
        // (`FreePage::init`). From then on, the eviction of a concurrent close
        // (`migrate_device_range()`, which takes any page with a non-zero refcount
        // and trylocks it) can lock the page before `zone_device_folio_init()`'s
        // own `lock_page()` does, and reads the backing page from this field:
        // set afterwards, the field would still be the free-list link, and the
        // eviction would copy from that device page as if it were system memory
        // (an Oops in `copy_page()`; lib/test_hmm.c sets it afterwards). With
        // this order such an eviction "migrates" a page that nothing maps: it
        // copies the backing folio to a system page that its finalize frees, and
        // our `lock_page()` waits until it is done.
        let data = rpage.map_or(core::ptr::null_mut(), |r| r.into_raw().cast());
        Some(free.init(data))
    }

    /// `dmirror_device_evict_chunk()` for every chunk (the C release path).
    pub(crate) fn evict_all(&self) {
        self.pool.evict_all();
    }

    /// `dmirror_device_remove_chunks()`: evicts and unmaps every chunk.
    pub(crate) fn remove_chunks(&self) {
        self.pool.remove_all();
    }
}
