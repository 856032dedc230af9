// SPDX-License-Identifier: GPL-2.0

//! The simulated device memory of one dmirror device.
//!
//! Owns the device's chunks (256 MiB [`DevPagemap`]s, grown on demand by
//! [`DEVMEM_CHUNKS_RESERVE`] slots under the chunk mutex), the free lists of
//! order-0 pages and PMD-order folios (linked through `zone_device_data`,
//! under the spinlock; lock order: chunk mutex, then spinlock), the
//! allocation counters, device page allocation (with the system "backing"
//! folio of a private page in its `zone_device_data`), the `dev_pagemap_ops`
//! callbacks, and the eviction of whole chunks back to system memory.

#![allow(unsafe_code)]

use crate::{
    driver::uapi::MemoryType,
    mm::{
        bindings,
        folio::{LockedPage, NewPage, PageRef},
        memremap::{ChunkKind, DevPagemap},
        migrate::{DeviceMigration, Src},
    },
};
use core::{
    ptr::NonNull,
    sync::atomic::{AtomicBool, Ordering},
};
use kernel::{
    ffi::c_void,
    new_mutex, new_spinlock,
    prelude::*,
    sync::{Mutex, SpinLock},
};

/// `DEVMEM_CHUNK_SIZE`.
pub(crate) const DEVMEM_CHUNK_SIZE: usize = 256 * 1024 * 1024;
/// `DEVMEM_CHUNKS_RESERVE`.
const DEVMEM_CHUNKS_RESERVE: usize = 16;
/// `HPAGE_PMD_ORDER`.
pub(crate) const HPAGE_PMD_ORDER: u32 = bindings::HPAGE_PMD_ORDER;
/// `HPAGE_PMD_NR`.
pub(crate) const HPAGE_PMD_NR: usize = bindings::HPAGE_PMD_NR;

/// Per-chunk data reached from the pagemap callbacks.
pub(crate) struct ChunkData {
    /// The owning device; it outlives its chunks.
    device: *const DmirrorDevice,
    /// Set (under the free-list lock) when the chunk is being removed: freed
    /// pages are then not put back on the free lists.
    remove: AtomicBool,
}

// SAFETY: TODO[DEVREF]. `device` points to a pinned device that outlives the chunk; it is only
// read.
unsafe impl Send for ChunkData {}
// SAFETY: TODO[DEVREF]. As above; `remove` is atomic.
unsafe impl Sync for ChunkData {}

impl ChunkData {
    fn device(&self) -> &DmirrorDevice {
        // SAFETY: TODO[DEVREF]. The device owns its chunks and removes them before it is dropped.
        unsafe { &*self.device }
    }

    /// Puts a freed page (a block of `1 << order` pages) of this chunk back on
    /// the device's free lists, unless the chunk is being removed.
    pub(crate) fn recycle(&self, page: PageRef<'_>, order: u32) {
        let mut free = self.device().free.lock();
        if !self.remove.load(Ordering::Relaxed) {
            free.cfree += 1 << order;
            free.push(page, order != 0);
        }
    }
}

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

/// A page on a free list.
type FreeLink = NonNull<bindings::page>;

/// The page of a free-list link.
///
/// # Safety
///
/// TODO[PGDATA] (docs/todo.md).
///
/// `link` is a page of a registered chunk of this driver that stays registered
/// for `'a` (a page on a free list: chunks leave the lists before they are
/// unmapped, see `DmirrorDevice::remove_chunks`).
unsafe fn free_page<'a>(link: FreeLink) -> PageRef<'a> {
    // SAFETY: TODO[PGDATA]. The caller guarantees that `link` is a memmap page for `'a`.
    unsafe { PageRef::from_non_null(link) }
}

/// The link stored in a free page's `zone_device_data`.
///
/// # Safety
///
/// TODO[PGDATA] (docs/todo.md).
///
/// `page` is on a free list (its `zone_device_data` is the list link).
unsafe fn next_link(page: PageRef<'_>) -> Option<FreeLink> {
    NonNull::new(page.zone_device_data().cast())
}

/// The free lists of a device.
///
/// # Invariants
///
/// `free_pages` and `free_folios` are lists of free pages (refcount 0) of the
/// device's registered chunks, linked through `zone_device_data`: order-0
/// pages, and heads of free PMD-aligned blocks.
struct FreeLists {
    calloc: usize,
    cfree: usize,
    free_pages: Option<FreeLink>,
    free_folios: Option<FreeLink>,
}

impl FreeLists {
    fn pop(&mut self, large: bool) -> Option<FreeLink> {
        if !large && self.free_pages.is_none() {
            self.split_block();
        }
        let head = if large {
            &mut self.free_folios
        } else {
            &mut self.free_pages
        };
        let link = (*head)?;
        // SAFETY: TODO[PGDATA]. By the type invariants `link` is a free page of a registered chunk,
        // whose `zone_device_data` links the list.
        *head = unsafe { next_link(free_page(link)) };
        self.calloc += if large { HPAGE_PMD_NR } else { 1 };
        Some(link)
    }

    /// Breaks one free PMD block into order-0 free pages, so that an order-0
    /// request neither fails nor grows the device while free blocks remain.
    /// (The C driver keeps each chunk on the one list its first allocation
    /// chose; a coherent device, which has a single fixed chunk, then fails
    /// every allocation of the other kind.)
    fn split_block(&mut self) {
        let Some(link) = self.free_folios else {
            return;
        };
        // SAFETY: TODO[PGDATA]. By the type invariants `link` is a free block head of a registered
        // chunk.
        let head = unsafe { free_page(link) };
        // SAFETY: TODO[PGDATA]. As above.
        self.free_folios = unsafe { next_link(head) };
        for k in (0..HPAGE_PMD_NR).rev() {
            // SAFETY: TODO[PGDATA]. A free block is a whole, PMD-aligned range of one chunk (see
            // `allocate_chunk` and `folio_free`), so `head + k` is a page of that chunk.
            let page = unsafe { head.nth(k) };
            self.push(page, false);
        }
    }

    fn push(&mut self, page: PageRef<'_>, large: bool) {
        let head = if large {
            &mut self.free_folios
        } else {
            &mut self.free_pages
        };
        let next = head.map_or(core::ptr::null_mut(), |p| p.as_ptr().cast::<c_void>());
        // SAFETY: TODO[PGDATA]. A free device page is owned by the driver; the field links the
        // list.
        unsafe { page.set_zone_device_data(next) };
        // INVARIANT: `page` is a free page of a registered chunk (the callers' pages).
        *head = Some(page.as_non_null());
    }

    /// Drops every page of `chunk` from both lists.
    fn remove_chunk(&mut self, chunk: &Chunk) {
        for large in [false, true] {
            let mut list = if large {
                self.free_folios.take()
            } else {
                self.free_pages.take()
            };
            let mut keep: Option<FreeLink> = None;
            while let Some(link) = list {
                // SAFETY: TODO[PGDATA]. By the type invariants `link` is a free page of a
                // registered chunk.
                let page = unsafe { free_page(link) };
                // SAFETY: TODO[PGDATA]. As above.
                list = unsafe { next_link(page) };
                if !chunk.is(page.pgmap()) {
                    let next = keep.map_or(core::ptr::null_mut(), |p| p.as_ptr().cast::<c_void>());
                    // SAFETY: TODO[PGDATA]. As above; the field links the list.
                    unsafe { page.set_zone_device_data(next) };
                    keep = Some(link);
                }
            }
            if large {
                self.free_folios = keep;
            } else {
                self.free_pages = keep;
            }
        }
    }
}

// SAFETY: TODO[PGDATA]. The lists hold memmap pointers, usable from any thread.
unsafe impl Send for FreeLists {}

struct Chunks {
    list: KVec<Pin<KBox<Chunk>>>,
    capacity: usize,
}

/// One dmirror device: its memory type and its device memory.
#[pin_data(PinnedDrop)]
pub(crate) struct DmirrorDevice {
    mtype: MemoryType,
    spm_addr: u64,
    #[pin]
    chunks: Mutex<Chunks>,
    #[pin]
    free: SpinLock<FreeLists>,
}

impl DmirrorDevice {
    /// A device without memory yet.
    pub(crate) fn new(mtype: MemoryType, spm_addr: u64) -> impl PinInit<Self> {
        pin_init!(Self {
            mtype,
            spm_addr,
            chunks <- new_mutex!(Chunks { list: KVec::new(), capacity: 0 }),
            free <- new_spinlock!(FreeLists {
                calloc: 0,
                cfree: 0,
                free_pages: None,
                free_folios: None,
            }),
        })
    }

    /// Whether `page` is a device page of this device.
    pub(crate) fn owns_page(&self, page: PageRef<'_>) -> bool {
        Chunk::of_page(page).is_some_and(|chunk| core::ptr::eq(chunk.data().device(), self))
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
    /// and, if `want` is `Some(is_large)`, takes one page (or PMD folio) from them.
    ///
    /// Every PMD-aligned block of the chunk goes on the folio list (order-0
    /// requests split blocks on demand), whatever the request that created it.
    /// A coherent device has exactly one chunk, its SPM range: once mapped,
    /// it is never mapped again (`ENOMEM`), unlike the C driver, which retries
    /// `memremap_pages()` on the same range.
    pub(crate) fn allocate_chunk(&self, want: Option<bool>) -> Result<Option<FreeLink>> {
        let kind = match self.mtype {
            MemoryType::Private => ChunkKind::Private {
                size: DEVMEM_CHUNK_SIZE,
            },
            MemoryType::Coherent => ChunkKind::Coherent {
                start: self.spm_addr as usize,
                size: DEVMEM_CHUNK_SIZE,
            },
        };
        let (pfn_first, pfn_last, count) = {
            let mut chunks = self.chunks.lock();
            if self.mtype == MemoryType::Coherent && !chunks.list.is_empty() {
                return Err(ENOMEM);
            }
            if chunks.list.len() == chunks.capacity {
                chunks.list.reserve(DEVMEM_CHUNKS_RESERVE, GFP_KERNEL)?;
                chunks.capacity += DEVMEM_CHUNKS_RESERVE;
            }
            let data = ChunkData {
                device: self,
                remove: AtomicBool::new(false),
            };
            let chunk = KBox::pin_init(
                Chunk::new(kind, c"hmm_dmirror", self.owner(), data),
                GFP_KERNEL,
            )?;
            let first = chunk.pfn_first();
            let last = first + chunk.npages();
            chunks.list.push(chunk, GFP_KERNEL)?;
            (first, last, chunks.list.len())
        };

        pr_info!(
            "added new {} MB chunk (total {} chunks, {} MB) PFNs [0x{:x} 0x{:x})\n",
            DEVMEM_CHUNK_SIZE / (1024 * 1024),
            count,
            count * (DEVMEM_CHUNK_SIZE / (1024 * 1024)),
            pfn_first,
            pfn_last
        );

        let mut free = self.free.lock();
        let mut pfn = pfn_first;
        while pfn < pfn_last {
            // SAFETY: TODO[PGDATA]. `pfn` is in the chunk just mapped.
            let Some(page) = (unsafe { PageRef::from_pfn(pfn) }) else {
                break;
            };
            if pfn % HPAGE_PMD_NR == 0 && pfn + HPAGE_PMD_NR <= pfn_last {
                free.push(page, true);
                pfn += HPAGE_PMD_NR;
                continue;
            }
            free.push(page, false);
            pfn += 1;
        }
        match want {
            None => Ok(None),
            Some(large) => free.pop(large).map(Some).ok_or(ENOMEM),
        }
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
        let popped = self.free.lock().pop(is_large);
        let link = match popped {
            Some(p) => p,
            None => self.allocate_chunk(Some(is_large)).ok().flatten()?,
        };
        // SAFETY: TODO[PGDATA]. `link` was just taken off a free list of a registered chunk of this
        // device, which stays registered while the device is borrowed (chunks are removed by
        // `remove_chunks`, after their pages were evicted and freed).
        let dpage = unsafe { free_page(link) };
        // The backing folio goes in before the page gets its first reference. From then
        // on, the eviction of a concurrent close (`migrate_device_range()`, which takes
        // any page with a non-zero refcount and trylocks it) can lock the page before
        // `zone_device_folio_init()`'s own `lock_page()` does, and reads the backing page
        // from this field: set afterwards, the field would still be the free-list link, and
        // the eviction would copy from that device page as if it were system memory (an Oops
        // in `copy_page()`; lib/test_hmm.c sets it afterwards). With this order such an
        // eviction "migrates" a page that nothing maps: it copies the backing folio to a
        // system page that its finalize frees, and our `lock_page()` waits until it is done.
        let data = rpage.map_or(core::ptr::null_mut(), |r| r.into_raw().cast());
        // SAFETY: TODO[PGDATA]. `dpage` is off the free list with refcount 0, so nobody else uses
        // it; the backing folio now belongs to it. `zone_device_folio_init` leaves the field of the
        // head page alone.
        unsafe { dpage.set_zone_device_data(data) };
        // SAFETY: TODO[PGDATA]. `dpage` is a free page (refcount 0) of one of our chunks, taken off
        // the free list (with the whole PMD block when `order` is not 0); it becomes the head of
        // the new folio even if it was a tail of an earlier, freed one (hence no `page_folio()`):
        // `zone_device_folio_init` clears every page's stale compound state and returns the folio
        // locked with one reference. `pgmap()` is the chunk's either way.
        unsafe {
            bindings::rust_mm_zone_device_folio_init(dpage.as_ptr().cast(), dpage.pgmap(), order)
        };
        // SAFETY: TODO[PGDATA]. `zone_device_folio_init` returned the page locked with one
        // reference.
        Some(unsafe { LockedPage::from_locked(dpage) })
    }

    /// `dmirror_device_evict_chunk()` for every chunk (the C release path).
    pub(crate) fn evict_all(&self) {
        let chunks = self.chunks.lock();
        for chunk in chunks.list.iter() {
            evict_chunk(chunk);
        }
    }

    /// `dmirror_device_remove_chunks()`: evicts and unmaps every chunk, resets the lists.
    pub(crate) fn remove_chunks(&self) {
        let mut chunks = self.chunks.lock();
        for chunk in core::mem::take(&mut chunks.list) {
            {
                let mut free = self.free.lock();
                chunk.data().remove.store(true, Ordering::Relaxed);
                free.remove_chunk(&chunk);
            }
            evict_chunk(&chunk);
            // Dropping the chunk unmaps it and releases its region.
            drop(chunk);
        }
        chunks.capacity = 0;
        let mut free = self.free.lock();
        free.free_pages = None;
        free.free_folios = None;
    }
}

#[pinned_drop]
impl PinnedDrop for DmirrorDevice {
    fn drop(self: Pin<&mut Self>) {
        self.remove_chunks();
    }
}

/// Migrates every device page of `chunk` back to system memory.
fn evict_chunk(chunk: &Chunk) {
    // SAFETY: TODO[EVICT]. The pfns are those of the registered `chunk`.
    let mut m = match unsafe { DeviceMigration::range(chunk.pfn_first(), chunk.npages()) } {
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
