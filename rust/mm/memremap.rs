// SPDX-License-Identifier: GPL-2.0

//! A registered ZONE_DEVICE page map (one chunk of device memory).
//!
//! Owns a `struct dev_pagemap` from `memremap_pages()` to `memunmap_pages()`,
//! and, for DEVICE_PRIVATE memory, the physical address range reserved with
//! `request_free_mem_region()` (released after unmapping). The object is pinned
//! because the memmap of the chunk points at `pgmap`. Callbacks of the static
//! `dev_pagemap_ops` reach the chunk's [`PagemapOps`] data through
//! [`DevPagemap::from_page`]. `memunmap_pages()` waits for every page of the
//! chunk to be freed, so the pages are evicted ([`PagemapOps::evict`]) before
//! it is dropped. A map is made and owned by a [`DevicePool`], which hands
//! out its free pages and takes them back from `folio_free`.

use crate::mm::{
    bindings,
    folio::{FolioRef, PageRef},
    migrate::DeviceMigration,
    pool::DevicePool,
};
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::{ffi::c_void, mm::virt::VmaRef, page::PAGE_SHIFT, prelude::*, types::Opaque};

/// The memory type of a chunk.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ChunkKind {
    /// DEVICE_PRIVATE memory in a free physical range of `size` bytes.
    Private {
        /// Size in bytes.
        size: usize,
    },
    /// DEVICE_COHERENT memory at a fixed physical range.
    Coherent {
        /// Physical start.
        start: usize,
        /// Size in bytes.
        size: usize,
    },
}

/// The `dev_pagemap_ops` callbacks, as safe functions on the chunk data, and
/// the eviction of a chunk's pages before it is unmapped.
pub(crate) trait PagemapOps: Sized + Send + Sync {
    /// `folio_free`: the last reference to a device folio was dropped. The
    /// pool takes the folio's pages back afterwards.
    fn folio_free(map: &DevPagemap<Self>, folio: FolioRef<'_>);

    /// `migrate_to_ram`: a CPU fault on a device-private page.
    fn migrate_to_ram(map: &DevPagemap<Self>, fault: &DeviceFault<'_>) -> bindings::vm_fault_t;

    /// `folio_split`: `head` is being split, `tail` is a new tail folio or
    /// `None` at the end.
    fn folio_split(map: &DevPagemap<Self>, head: FolioRef<'_>, tail: Option<FolioRef<'_>>);

    /// Moves every allocated page of `map` back to system memory (for example
    /// with [`DevPagemap::migrate_all`]); called before the map is unmapped,
    /// which waits until every page of it is free.
    fn evict(map: &DevPagemap<Self>);
}

/// A CPU fault on a device-private page (the `struct vm_fault` that
/// `migrate_to_ram` receives).
///
/// # Invariants
///
/// `vmf` is the fault being handled; `page` is its non-NULL `vmf->page`, locked
/// and referenced by the fault path for the whole callback, during which
/// `vmf->vma` is locked (mmap or per-VMA lock) and `vmf->address` is in it.
pub(crate) struct DeviceFault<'a> {
    vmf: &'a bindings::vm_fault,
    page: PageRef<'a>,
}

impl<'a> DeviceFault<'a> {
    /// The device page that faulted, locked and referenced for the callback.
    pub(crate) fn page(&self) -> PageRef<'a> {
        self.page
    }

    /// The faulting user address.
    pub(crate) fn address(&self) -> usize {
        self.vmf.__bindgen_anon_1.address
    }

    /// Whether the page is mapped by a PTE (not by a PMD).
    pub(crate) fn pte_mapped(&self) -> bool {
        !self.vmf.pte.is_null()
    }

    /// The faulting VMA.
    pub(crate) fn vma(&self) -> &VmaRef {
        // SAFETY: By the type invariants the VMA is locked for the whole callback, which
        // outlives `self`.
        unsafe { VmaRef::from_raw(self.vmf.__bindgen_anon_1.vma) }
    }
}

/// A registered device page map with its callback data.
///
/// # Invariants
///
/// `pgmap` is registered with `memremap_pages()` from the end of
/// initialisation until drop; for a private chunk `[start, start + size)` is a
/// region reserved with `request_free_mem_region()` until drop. `pool` is the
/// pinned pool that owns the map, alive while the map is.
#[pin_data(PinnedDrop)]
pub(crate) struct DevPagemap<T: PagemapOps> {
    #[pin]
    pgmap: Opaque<bindings::dev_pagemap>,
    kind: ChunkKind,
    start: usize,
    size: usize,
    pool: *const DevicePool<T>,
    /// Set (under the pool's free-list lock) when the map is being removed:
    /// its freed pages then stay off the free lists.
    removing: AtomicBool,
    data: T,
}

// SAFETY: `pgmap` is only changed by the memremap core; `T` is `Send`.
unsafe impl<T: PagemapOps> Send for DevPagemap<T> {}
// SAFETY: `pgmap` is only read after registration; `T` is `Sync`.
unsafe impl<T: PagemapOps> Sync for DevPagemap<T> {}

/// Releases a reserved region if initialisation fails after reserving it.
struct RegionGuard(Option<(usize, usize)>);

impl Drop for RegionGuard {
    fn drop(&mut self) {
        if let Some((start, size)) = self.0 {
            // SAFETY: The region was reserved by `request_free_mem_region` and not released.
            unsafe { bindings::release_mem_region(start as u64, size as u64) };
        }
    }
}

impl<T: PagemapOps> DevPagemap<T> {
    const OPS: bindings::dev_pagemap_ops = bindings::dev_pagemap_ops {
        folio_free: Some(Self::folio_free_callback),
        migrate_to_ram: Some(Self::migrate_to_ram_callback),
        folio_split: Some(Self::folio_split_callback),
        ..pin_init::zeroed()
    };

    /// Reserves (private, as the resource `name`) or takes (coherent) the
    /// physical range and maps it with `memremap_pages(pgmap, numa_node_id())`,
    /// `owner` as `pgmap->owner`. Errors are the C functions' errnos.
    ///
    /// `pool` must be the pinned pool that will own the map (see
    /// [`DevicePool::add`]).
    pub(super) fn new(
        kind: ChunkKind,
        name: &'static CStr,
        owner: *const c_void,
        pool: *const DevicePool<T>,
        data: T,
    ) -> impl PinInit<Self, Error> {
        let init = move |slot: *mut Self| -> Result {
            let (mut region, start, size, ty) = match kind {
                ChunkKind::Private { size } => {
                    // SAFETY: `iomem_resource` is the global resource tree and the name is a
                    // static C string.
                    let res = unsafe {
                        bindings::request_free_mem_region(
                            &raw mut bindings::iomem_resource,
                            size,
                            name.as_char_ptr(),
                        )
                    };
                    kernel::error::from_err_ptr(res)?;
                    if res.is_null() {
                        return Err(ENOMEM);
                    }
                    // SAFETY: `res` is a valid resource returned above.
                    let (rs, re) = unsafe { ((*res).start as usize, (*res).end as usize) };
                    let size = re - rs + 1;
                    (
                        RegionGuard(Some((rs, size))),
                        rs,
                        size,
                        bindings::memory_type_MEMORY_DEVICE_PRIVATE,
                    )
                }
                ChunkKind::Coherent { start, size } => (
                    RegionGuard(None),
                    start,
                    size,
                    bindings::memory_type_MEMORY_DEVICE_COHERENT,
                ),
            };
            // SAFETY: `slot` is valid for writes (pin-init contract); the fields are
            // written before `pgmap` is registered.
            unsafe {
                (&raw mut (*slot).kind).write(kind);
                (&raw mut (*slot).start).write(start);
                (&raw mut (*slot).size).write(size);
                (&raw mut (*slot).pool).write(pool);
                (&raw mut (*slot).removing).write(AtomicBool::new(false));
                (&raw mut (*slot).data).write(data);
            }
            // SAFETY: As above; `Opaque` may be written through its raw pointer.
            let pgmap = unsafe { Opaque::cast_into(&raw const (*slot).pgmap) };
            // SAFETY: `pgmap` is valid for writes; an all-zero `dev_pagemap` is the C
            // driver's `kzalloc` state. The union member `range` is the one used with
            // `nr_range == 1`.
            unsafe {
                core::ptr::write_bytes(pgmap, 0, 1);
                (*pgmap).type_ = ty;
                let range = (*pgmap).__bindgen_anon_1.range.as_mut();
                range.start = start as u64;
                range.end = (start + size - 1) as u64;
                (*pgmap).nr_range = 1;
                (*pgmap).ops = &Self::OPS;
                (*pgmap).owner = owner.cast_mut();
            }
            // SAFETY: `pgmap` is fully set up, pinned and outlives the registration
            // (`PinnedDrop` unmaps it); the ops table is static.
            let ptr = unsafe { bindings::memremap_pages(pgmap, bindings::rust_mm_numa_node_id()) };
            let ret = if ptr.is_null() {
                Err(EFAULT)
            } else {
                kernel::error::from_err_ptr(ptr).map(|_| ())
            };
            if ret.is_err() {
                // SAFETY: `data` was written above and is not used any more.
                unsafe { core::ptr::drop_in_place(&raw mut (*slot).data) };
                return ret;
            }
            // INVARIANT: Registered; the region now belongs to the object.
            region.0 = None;
            Ok(())
        };
        // SAFETY: On success `init` initialised every field; on failure it dropped what it
        // wrote and released the region.
        unsafe { pin_init::pin_init_from_closure(init) }
    }

    /// The chunk that owns a device page of a pagemap with `Self::OPS`.
    ///
    /// # Safety
    ///
    /// `page` must be a ZONE_DEVICE page whose pagemap was registered by a
    /// `DevPagemap<T>` that is still alive for `'a`.
    pub(crate) unsafe fn from_page<'a>(page: PageRef<'_>) -> &'a Self {
        let pgmap = page.pgmap();
        // SAFETY: The caller guarantees `pgmap` is the `pgmap` field of a live `Self`.
        unsafe { &*kernel::container_of!(Opaque::cast_from(pgmap), Self, pgmap) }
    }

    /// The pagemap of `page` if it is one of this type (same ops table),
    /// borrowed for as long as the page: a ZONE_DEVICE page's memmap lives only
    /// while its pagemap is registered, and a `DevPagemap` outlives its
    /// registration (its drop unmaps first).
    pub(crate) fn of_page<'a>(page: PageRef<'a>) -> Option<&'a Self> {
        if !Self::owns(page) {
            return None;
        }
        // SAFETY: The page is a ZONE_DEVICE page of a pagemap registered with `Self::OPS`,
        // which only `DevPagemap<T>::new` registers, embedded in a `Self` that is alive while
        // the page's memmap is, that is, for `'a` (see above).
        Some(unsafe { Self::from_page(page) })
    }

    /// Whether `page` belongs to a pagemap of this type (same ops table).
    pub(crate) fn owns(page: PageRef<'_>) -> bool {
        if !page.is_zone_device() {
            return false;
        }
        let pgmap = page.pgmap();
        // SAFETY: A ZONE_DEVICE page has a valid registered pagemap.
        !pgmap.is_null() && core::ptr::eq(unsafe { (*pgmap).ops }, &Self::OPS)
    }

    /// The callback data.
    pub(crate) fn data(&self) -> &T {
        &self.data
    }

    /// The first pfn of the chunk.
    pub(crate) fn pfn_first(&self) -> usize {
        self.start >> PAGE_SHIFT
    }

    /// The number of pages of the chunk.
    pub(crate) fn npages(&self) -> usize {
        self.size >> PAGE_SHIFT
    }

    /// Whether the chunk is this pagemap.
    pub(crate) fn is(&self, pgmap: *mut bindings::dev_pagemap) -> bool {
        core::ptr::eq(self.pgmap.get(), pgmap)
    }

    /// The page `index` of the chunk, borrowed from the map, which keeps its
    /// memmap alive; `None` past the end.
    pub(crate) fn page(&self, index: usize) -> Option<PageRef<'_>> {
        if index >= self.npages() {
            return None;
        }
        // SAFETY: The pfn is in the chunk, registered while `self` is alive (type invariants).
        unsafe { PageRef::from_pfn(self.pfn_first() + index) }
    }

    /// The pool that owns the map.
    pub(crate) fn pool(&self) -> &DevicePool<T> {
        // SAFETY: By the type invariants the pool outlives the map.
        unsafe { &*self.pool }
    }

    /// Whether the map is being removed from its pool.
    pub(super) fn removing(&self) -> bool {
        self.removing.load(Ordering::Relaxed)
    }

    /// Marks the map as being removed (under the pool's free-list lock).
    pub(super) fn set_removing(&self) {
        self.removing.store(true, Ordering::Relaxed);
    }

    /// `migrate_device_range()` over the whole chunk: every allocated page of
    /// it that could be locked, for [`PagemapOps::evict`].
    pub(crate) fn migrate_all(&self) -> Result<DeviceMigration> {
        // SAFETY: The pfns are those of this chunk, registered while `self` is borrowed; the
        // selected entries hold their pages, which keeps the chunk registered until the
        // migration is finalized.
        unsafe { DeviceMigration::range(self.pfn_first(), self.npages()) }
    }

    /// # Safety
    ///
    /// Called by the memremap core for a folio of a pagemap with `Self::OPS`.
    unsafe extern "C" fn folio_free_callback(folio: *mut bindings::folio) {
        // SAFETY: The core passes a valid folio of our pagemap.
        let Some(folio) = (unsafe { FolioRef::from_raw(folio) }) else {
            return;
        };
        // SAFETY: The folio belongs to a chunk that is registered (the core calls back
        // before `memunmap_pages` returns).
        let map = unsafe { Self::from_page(folio.head()) };
        let (head, order) = (folio.head(), folio.order());
        T::folio_free(map, folio);
        map.pool().recycle(map, head, order);
    }

    /// # Safety
    ///
    /// Called by the fault path for a locked device-private page of our pagemap.
    unsafe extern "C" fn migrate_to_ram_callback(
        vmf: *mut bindings::vm_fault,
    ) -> bindings::vm_fault_t {
        // SAFETY: The fault path passes a valid `vm_fault`, alive for the callback.
        let vmf = unsafe { &*vmf };
        // SAFETY: `vmf->page` is the referenced device page that faulted.
        let Some(page) = (unsafe { PageRef::from_raw(vmf.page) }) else {
            return bindings::vm_fault_reason_VM_FAULT_SIGBUS;
        };
        // SAFETY: The page is referenced, so its chunk is registered.
        let map = unsafe { Self::from_page(page) };
        // INVARIANT: As the fault path guarantees for `migrate_to_ram`.
        T::migrate_to_ram(map, &DeviceFault { vmf, page })
    }

    /// # Safety
    ///
    /// Called by the split code for folios of our pagemap.
    unsafe extern "C" fn folio_split_callback(
        head: *mut bindings::folio,
        tail: *mut bindings::folio,
    ) {
        // SAFETY: The core passes a valid head folio of our pagemap.
        let Some(head) = (unsafe { FolioRef::from_raw(head) }) else {
            return;
        };
        // SAFETY: `tail` is NULL or a valid folio being split off `head`.
        let tail = unsafe { FolioRef::from_raw(tail) };
        // SAFETY: The head folio is referenced during the split, so its chunk is registered.
        let map = unsafe { Self::from_page(head.head()) };
        T::folio_split(map, head, tail);
    }
}

#[pinned_drop]
impl<T: PagemapOps> PinnedDrop for DevPagemap<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariants `pgmap` is registered; this waits for its pages.
        unsafe { bindings::memunmap_pages(self.pgmap.get()) };
        if let ChunkKind::Private { .. } = self.kind {
            // SAFETY: By the type invariants the region is reserved by us.
            unsafe { bindings::release_mem_region(self.start as u64, self.size as u64) };
        }
    }
}
