// SPDX-License-Identifier: GPL-2.0

//! Pages and folios the driver touches by pointer.
//!
//! C header: [`include/linux/mm.h`](srctree/include/linux/mm.h).
//!
//! Owns the three ways a driver holds a `struct page`:
//! - [`PageRef<'a>`]: a borrowed memmap entry, for metadata (pfn, folio,
//!   zone, `zone_device_data`), valid for `'a`: the lifetime is that of
//!   what keeps the page's memmap alive (a [`NewPage`] or [`LockedPage`]
//!   borrowed, a migration's arrays, a validated `hmm_range`, a guard). It
//!   is `Copy` like `&'a Page`, and cannot outlive what it borrows from
//!   (formerly `PageRef` had no lifetime: a copy kept past
//!   `memunmap_pages()` read a freed memmap from safe code);
//! - [`NewPage`]: a freshly allocated page or folio the driver holds the only
//!   reference to, freed on drop;
//! - [`LockedPage`]: a page the driver holds locked and referenced, unlocked and
//!   released on drop unless handed to the migration core with
//!   [`LockedPage::into_migrate_pfn`] (destination pages are locked by the
//!   driver; the dst entry itself carries no lock flag).
//!
//! [`LockedFolio`] is the locked, referenced folio `make_device_exclusive()`
//! returns.

use crate::mm::bindings;
use core::{
    marker::PhantomData,
    ptr::NonNull,
    sync::atomic::{AtomicUsize, Ordering},
};
use kernel::{ffi::c_void, mm::virt::VmaRef, page::PAGE_SIZE, prelude::*};

/// A borrowed `struct page`, valid for `'a`.
///
/// # Invariants
///
/// `self.0` points to a `struct page` of the memmap (system RAM, or a
/// ZONE_DEVICE page of a registered pagemap) that stays a memmap entry for
/// `'a`. Holding a `PageRef` does not hold a reference on the page.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageRef<'a>(NonNull<bindings::page>, PhantomData<&'a bindings::page>);

// SAFETY: A `PageRef` is a pointer into the global memmap; it may be used from any thread.
unsafe impl Send for PageRef<'_> {}
// SAFETY: See above; all methods are safe to call concurrently.
unsafe impl Sync for PageRef<'_> {}

impl<'a> PageRef<'a> {
    /// Wraps a raw page pointer, `None` for NULL.
    ///
    /// # Safety
    ///
    /// A non-NULL `ptr` must point to a `struct page` of the memmap that stays
    /// valid for `'a` (see the type invariants).
    pub(crate) unsafe fn from_raw(ptr: *mut bindings::page) -> Option<Self> {
        // INVARIANT: The caller guarantees that a non-NULL `ptr` is a memmap page for `'a`.
        NonNull::new(ptr).map(|p| Self(p, PhantomData))
    }

    /// Wraps a non-NULL page pointer.
    ///
    /// # Safety
    ///
    /// As [`PageRef::from_raw`].
    pub(crate) unsafe fn from_non_null(ptr: NonNull<bindings::page>) -> Self {
        // INVARIANT: The caller guarantees that `ptr` is a memmap page for `'a`.
        Self(ptr, PhantomData)
    }

    /// The pointer, for a driver that keeps it in a structure of its own
    /// (and turns it back into a [`PageRef`] with [`PageRef::from_non_null`]).
    pub(crate) fn as_non_null(self) -> NonNull<bindings::page> {
        self.0
    }

    /// The page of a pfn.
    ///
    /// # Safety
    ///
    /// `pfn` must be a valid pfn of system RAM or of a registered device chunk,
    /// and stay one for `'a`.
    pub(crate) unsafe fn from_pfn(pfn: usize) -> Option<Self> {
        // SAFETY: The caller guarantees `pfn` is valid, so `pfn_to_page` is its memmap entry.
        unsafe { Self::from_raw(memmap::pfn_to_page(pfn)) }
    }

    /// The page of a `MIGRATE_PFN_*` entry, `None` if VALID is clear.
    ///
    /// # Safety
    ///
    /// `mpfn` must be an entry of a migration's src or dst array (whose pages
    /// the migration keeps alive for `'a`), or made by `migrate_pfn()` of such a page.
    pub(crate) unsafe fn from_migrate_pfn(mpfn: usize) -> Option<Self> {
        if mpfn & mpfn::VALID == 0 {
            return None;
        }
        // SAFETY: A valid migrate pfn encodes the pfn of a memmap page (`migrate_pfn_to_page()`).
        unsafe { Self::from_raw(memmap::pfn_to_page(mpfn >> mpfn::SHIFT)) }
    }

    /// Drops a reference (`put_page`).
    ///
    /// # Safety
    ///
    /// The caller must own one reference to the page and give it up.
    unsafe fn put(self) {
        // SAFETY: The caller owns the reference.
        unsafe { bindings::rust_mm_put_page(self.as_ptr()) };
    }

    /// The raw pointer.
    pub(crate) fn as_ptr(self) -> *mut bindings::page {
        self.0.as_ptr()
    }

    /// The page frame number.
    pub(crate) fn pfn(self) -> usize {
        memmap::page_to_pfn(self.0)
    }

    /// The page `n` pages after this one, the memmap entry of `self.pfn() + n`,
    /// by pointer arithmetic as `folio_page()` does (no call into C: this runs
    /// once per page of every migration, and `pfn_to_page(page_to_pfn() + n)`
    /// through the helpers cost two calls each time).
    ///
    /// # Safety
    ///
    /// This page and the `n` after it must lie in one folio, or in one naturally
    /// aligned block of at most `HPAGE_PMD_NR` pages
    /// of a chunk: the memmap of either is contiguous (the kernel relies on that
    /// for folios; a PMD-aligned block never crosses a memory section).
    pub(crate) unsafe fn nth(self, n: usize) -> Self {
        // SAFETY: The caller guarantees that the `n` entries after `self` are in the same
        // contiguous memmap range, so the result is in bounds of it (and not NULL).
        // INVARIANT: That entry is a memmap page of the same folio or chunk.
        Self(unsafe { self.0.add(n) }, PhantomData)
    }

    /// The folio this page belongs to.
    pub(crate) fn folio(self) -> FolioRef<'a> {
        // SAFETY: By the type invariants the page is a memmap entry; its folio is too.
        let f = unsafe { bindings::rust_mm_page_folio(self.as_ptr()) };
        // INVARIANT: `page_folio` of a memmap page is a memmap folio of the same memmap
        // range, never NULL.
        FolioRef(NonNull::new(f).unwrap_or(self.0.cast()), PhantomData)
    }

    /// How many pages this page lies after `base` (`self.pfn() - base.pfn()`,
    /// by pointer difference: no `page_to_pfn()` calls).
    ///
    /// # Safety
    ///
    /// `base` and this page must lie in one folio (or one folio being split),
    /// `base` at or before this page: the memmap of a folio is contiguous.
    pub(crate) unsafe fn index_from(self, base: PageRef<'_>) -> usize {
        // SAFETY: The caller guarantees both entries are in one contiguous memmap range.
        let k = unsafe { self.as_ptr().offset_from(base.as_ptr()) };
        k.unsigned_abs()
    }

    /// The folio this page belongs to and the page's index in it, without a
    /// `page_to_pfn()` per page.
    pub(crate) fn folio_and_index(self) -> (FolioRef<'a>, usize) {
        let folio = self.folio();
        // SAFETY: The page is one of its folio's pages, which follow the head page.
        let k = unsafe { self.index_from(folio.head()) };
        (folio, k)
    }

    /// Whether this is a DEVICE_PRIVATE page.
    pub(crate) fn is_device_private(self) -> bool {
        // SAFETY: By the type invariants the page is a memmap entry.
        unsafe { bindings::rust_mm_is_device_private_page(self.as_ptr()) }
    }

    /// Whether this is a DEVICE_COHERENT page.
    pub(crate) fn is_device_coherent(self) -> bool {
        // SAFETY: By the type invariants the page is a memmap entry.
        unsafe { bindings::rust_mm_is_device_coherent_page(self.as_ptr()) }
    }

    /// Whether this is any ZONE_DEVICE page: `is_zone_device_page()`, read from
    /// the zone bits of the page's flags here rather than through a C call (it
    /// runs for every entry of a SNAPSHOT and of a migration's src array).
    pub(crate) fn is_zone_device(self) -> bool {
        // SAFETY: By the type invariants the page is a memmap entry, so its `flags` word is
        // valid and aligned for `'a`. Other bits of that word change concurrently, with atomic
        // bit operations; its zone bits are set when the memmap entry is initialised and never
        // change while it is one (`memdesc_zonenum()` asserts that to KCSAN). A relaxed atomic
        // load reads the word as `page_zonenum()`'s plain load does, without a data race.
        let flags = unsafe {
            AtomicUsize::from_ptr(core::ptr::addr_of_mut!((*self.as_ptr()).flags.f).cast())
        }
        .load(Ordering::Relaxed);
        (flags >> bindings::ZONES_PGSHIFT) & bindings::ZONES_MASK == bindings::ZONE_DEVICE
    }

    /// Whether this is the shared zero page.
    pub(crate) fn is_zero_page(self) -> bool {
        // SAFETY: Any pfn may be compared with the zero pfn.
        unsafe { bindings::rust_mm_is_zero_pfn(self.pfn()) }
    }

    /// The `dev_pagemap` of a ZONE_DEVICE page.
    pub(crate) fn pgmap(self) -> *mut bindings::dev_pagemap {
        // SAFETY: By the type invariants the page is a memmap entry.
        unsafe { bindings::rust_mm_page_pgmap(self.as_ptr()) }
    }

    /// The `zone_device_data` field.
    pub(crate) fn zone_device_data(self) -> *mut c_void {
        // SAFETY: By the type invariants the page is a memmap entry; reading the field is
        // harmless, its meaning is up to the page's owner.
        unsafe { bindings::rust_mm_page_zone_device_data(self.as_ptr()) }
    }

    /// Sets the `zone_device_data` field.
    ///
    /// # Safety
    ///
    /// The caller must own the page (a device page of this driver, or its backing
    /// page), so that nobody else uses the field.
    pub(crate) unsafe fn set_zone_device_data(self, data: *mut c_void) {
        // SAFETY: The page is a memmap entry and the caller owns the field.
        unsafe { bindings::rust_mm_page_set_zone_device_data(self.as_ptr(), data) }
    }

    /// Copies the whole page `from` into this page.
    ///
    /// # Safety
    ///
    /// Both pages must be referenced (or otherwise kept alive) and not
    /// concurrently written through another path the caller relies on.
    pub(crate) unsafe fn copy_from(self, from: PageRef<'_>) {
        // SAFETY: Both pages are alive per the caller; `copy_highpage` kmaps both.
        unsafe { bindings::rust_mm_copy_highpage(self.as_ptr(), from.as_ptr()) }
    }

    /// Zeroes the page.
    ///
    /// # Safety
    ///
    /// The page must be referenced by the caller.
    pub(crate) unsafe fn clear(self) {
        // SAFETY: The page is alive per the caller.
        unsafe { bindings::rust_mm_clear_highpage(self.as_ptr()) }
    }

    /// Appends the page's contents to `buf` (one page, without zero-filling
    /// `buf` first: the C driver's bounce buffer is uninitialised memory too).
    ///
    /// # Safety
    ///
    /// The page must stay allocated for the duration of the call.
    pub(crate) unsafe fn append_to(self, buf: &mut VVec<u8>) -> Result {
        buf.reserve(PAGE_SIZE, GFP_KERNEL)?;
        let dst = buf.spare_capacity_mut();
        if dst.len() < PAGE_SIZE {
            return Err(ENOMEM);
        }
        // SAFETY: `dst` has room for `PAGE_SIZE` bytes (checked above); the page is alive
        // per the caller; `memcpy_from_page` maps it for the copy.
        unsafe { bindings::rust_mm_memcpy_page_from(dst.as_mut_ptr().cast(), self.as_ptr()) };
        // SAFETY: The `PAGE_SIZE` bytes after the current length were initialised above,
        // within the capacity.
        unsafe { buf.inc_len(PAGE_SIZE) };
        Ok(())
    }

    /// Copies one page of data, `src`, into the page.
    ///
    /// # Safety
    ///
    /// The page must stay allocated for the duration of the call.
    pub(crate) unsafe fn write_from(self, src: &[u8; PAGE_SIZE]) {
        // SAFETY: `src` is valid for `PAGE_SIZE` bytes; the page is alive per the caller.
        unsafe { bindings::rust_mm_memcpy_page_to(self.as_ptr(), src.as_ptr().cast()) }
    }
}

/// pfn <-> `struct page` conversions without a C call per page.
///
/// With `CONFIG_SPARSEMEM_VMEMMAP` (x86-64, arm64, ...) `pfn_to_page(pfn)` is
/// `vmemmap + pfn`; `vmemmap` is fixed during early boot, so [`init`] reads it
/// once and the conversions are arithmetic, as they are inline in C. Without
/// it, or before [`init`], they call the C helpers. A migration or SNAPSHOT
/// converts every entry, and a call per conversion showed in `make bench`.
pub(crate) mod memmap {
    use crate::mm::bindings;
    use core::{
        ptr::NonNull,
        sync::atomic::{AtomicUsize, Ordering},
    };

    /// `vmemmap` as an address, 0 until [`init`] or without a virtual memmap.
    static VMEMMAP: AtomicUsize = AtomicUsize::new(0);

    /// Reads `vmemmap` (module init).
    pub(crate) fn init() {
        // SAFETY: The helper only reads a value set up during early boot.
        let base = unsafe { bindings::rust_mm_vmemmap() };
        VMEMMAP.store(base as usize, Ordering::Relaxed);
    }

    /// `pfn_to_page(pfn)`: a memmap entry if `pfn` is a valid pfn (the pointer is
    /// computed, not dereferenced).
    pub(crate) fn pfn_to_page(pfn: usize) -> *mut bindings::page {
        match VMEMMAP.load(Ordering::Relaxed) {
            // SAFETY: `pfn_to_page` only computes the address.
            0 => unsafe { bindings::rust_mm_pfn_to_page(pfn) },
            base => (base as *mut bindings::page).wrapping_add(pfn),
        }
    }

    /// `page_to_pfn(page)` of a memmap entry.
    pub(crate) fn page_to_pfn(page: NonNull<bindings::page>) -> usize {
        match VMEMMAP.load(Ordering::Relaxed) {
            // SAFETY: `page_to_pfn` only computes from the address.
            0 => unsafe { bindings::rust_mm_page_to_pfn(page.as_ptr()) as usize },
            base => {
                (page.as_ptr() as usize).wrapping_sub(base) / core::mem::size_of::<bindings::page>()
            }
        }
    }
}

/// The pfns of the shared zero page(s), read once for a batch of pfns:
/// `is_zero_pfn()` without a C call per pfn.
///
/// An architecture with coloured zero pages (`__HAVE_COLOR_ZERO_PAGE`) has
/// `extra + 1` of them from `first` on; the others have one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ZeroPfns {
    first: usize,
    extra: usize,
}

impl ZeroPfns {
    /// The zero pfns of this boot (set up before any module loads, never changed).
    pub(crate) fn get() -> Self {
        Self {
            // SAFETY: Both helpers only read variables set up at boot.
            first: unsafe { bindings::rust_mm_zero_pfn_first() } as usize,
            // SAFETY: As above.
            extra: unsafe { bindings::rust_mm_zero_pfn_extra() } as usize,
        }
    }

    /// `is_zero_pfn(pfn)`.
    pub(crate) const fn contains(self, pfn: usize) -> bool {
        pfn.wrapping_sub(self.first) <= self.extra
    }
}

/// A borrowed `struct folio`, valid for `'a`.
///
/// # Invariants
///
/// Same as [`PageRef`]: a memmap folio for `'a`, no reference held.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct FolioRef<'a>(NonNull<bindings::folio>, PhantomData<&'a bindings::folio>);

impl<'a> FolioRef<'a> {
    /// Wraps a raw folio pointer, `None` for NULL.
    ///
    /// # Safety
    ///
    /// As [`PageRef::from_raw`].
    pub(crate) unsafe fn from_raw(ptr: *mut bindings::folio) -> Option<Self> {
        // INVARIANT: Guaranteed by the caller.
        NonNull::new(ptr).map(|p| Self(p, PhantomData))
    }

    /// The raw pointer.
    pub(crate) fn as_ptr(self) -> *mut bindings::folio {
        self.0.as_ptr()
    }

    /// The folio's head page (`&folio->page`).
    pub(crate) fn head(self) -> PageRef<'a> {
        // INVARIANT: `struct folio` overlays its head page at offset 0 (`&folio->page`,
        // which the kernel's FOLIO_MATCH assertions keep in place), a memmap page.
        PageRef(self.0.cast(), PhantomData)
    }

    /// The `n`th page of the folio (`folio_page()`, which is pointer arithmetic:
    /// the pages of a folio are contiguous from its head page on).
    ///
    /// # Safety
    ///
    /// `n` must be below the number of pages of the folio.
    pub(crate) unsafe fn page(self, n: usize) -> PageRef<'a> {
        // SAFETY: The caller guarantees `n` is inside the folio, whose pages are contiguous.
        unsafe { self.head().nth(n) }
    }

    /// The folio's pages, head first.
    pub(crate) fn pages(self) -> Pages<'a> {
        // INVARIANT: The head and the `nr_pages() - 1` pages after it are the folio's.
        Pages {
            first: self.head(),
            nr: self.nr_pages(),
        }
    }

    /// The folio's order.
    pub(crate) fn order(self) -> u32 {
        // SAFETY: By the type invariants the folio is a memmap entry.
        unsafe { bindings::rust_mm_folio_order(self.as_ptr()) }
    }

    /// The number of pages in the folio.
    pub(crate) fn nr_pages(self) -> usize {
        1usize << self.order()
    }

    /// Whether the folio has more than one page.
    pub(crate) fn is_large(self) -> bool {
        // SAFETY: By the type invariants the folio is a memmap entry.
        unsafe { bindings::rust_mm_folio_test_large(self.as_ptr()) }
    }

    /// The folio's `zone_device_data`.
    pub(crate) fn zone_device_data(self) -> *mut c_void {
        // SAFETY: By the type invariants the folio is a memmap entry.
        unsafe { bindings::rust_mm_folio_zone_device_data(self.as_ptr()) }
    }
}

/// A run of pages that lie in one folio, in order: the pages of a folio
/// ([`FolioRef::pages`]) or a single page ([`Pages::one`]), valid for `'a`.
///
/// Indexing is bounds-checked pointer arithmetic, as `folio_page()`, so a
/// loop over the pages of a migration entry needs neither `unsafe` nor a
/// call into C per page.
///
/// # Invariants
///
/// `first` and the `nr - 1` memmap entries after it lie in one folio (the
/// memmap of a folio is contiguous), each a memmap page for `'a`; `nr >= 1`.
#[derive(Clone, Copy)]
pub(crate) struct Pages<'a> {
    first: PageRef<'a>,
    nr: usize,
}

impl<'a> Pages<'a> {
    /// The single page `page`.
    pub(crate) fn one(page: PageRef<'a>) -> Self {
        // INVARIANT: One page lies in its own folio.
        Self { first: page, nr: 1 }
    }

    /// The number of pages.
    pub(crate) fn len(&self) -> usize {
        self.nr
    }

    /// The first page.
    pub(crate) fn first(&self) -> PageRef<'a> {
        self.first
    }

    /// The `k`th page, `None` past the end.
    #[inline]
    pub(crate) fn get(&self, k: usize) -> Option<PageRef<'a>> {
        if k >= self.nr {
            return None;
        }
        // SAFETY: `k < nr`, so by the type invariants the entry lies in the same folio.
        Some(unsafe { self.first.nth(k) })
    }

    /// The pages in order.
    #[inline]
    pub(crate) fn iter(self) -> impl Iterator<Item = PageRef<'a>> {
        (0..self.nr).filter_map(move |k| self.get(k))
    }
}

/// A newly allocated page or folio of `order`, owned by the driver.
///
/// # Invariants
///
/// The driver holds the only reference to `page`, the head of a folio of `order`.
pub(crate) struct NewPage {
    page: NonNull<bindings::page>,
    order: u32,
}

impl NewPage {
    /// `folio_alloc(gfp, order)`.
    pub(crate) fn folio_alloc(gfp: bindings::gfp_t, order: u32) -> Option<Self> {
        // SAFETY: `folio_alloc` can be called with any flags and order.
        let f = unsafe { bindings::rust_mm_folio_alloc(gfp, order) };
        // SAFETY: A folio returned by the allocator is a memmap folio.
        let f = unsafe { FolioRef::from_raw(f) }?;
        // INVARIANT: The allocator gave us the only reference.
        Some(Self {
            page: f.head().0,
            order,
        })
    }

    /// `alloc_page(gfp)`.
    pub(crate) fn alloc_page(gfp: bindings::gfp_t) -> Option<Self> {
        // SAFETY: `alloc_page` can be called with any flags.
        let p = unsafe { bindings::rust_mm_alloc_page(gfp) };
        let page = NonNull::new(p)?;
        // INVARIANT: A page returned by the allocator is a memmap page; it gave us the only
        // reference.
        Some(Self { page, order: 0 })
    }

    /// `vma_alloc_folio(gfp, order, vma, addr)` (`alloc_page_vma` for order 0);
    /// `None` if the allocation fails or `addr` is not in `vma`.
    ///
    /// Safe: a `&VmaRef` is only handed out under the VMA's lock. (Formerly an
    /// `unsafe fn` on a raw `vm_area_struct` pointer.)
    pub(crate) fn vma_alloc(
        gfp: bindings::gfp_t,
        order: u32,
        vma: &VmaRef,
        addr: usize,
    ) -> Option<Self> {
        if addr < vma.start() || addr >= vma.end() {
            return None;
        }
        let vma = vma.as_ptr();
        let page = if order == 0 {
            // SAFETY: `vma` is locked for read while borrowed and contains `addr`.
            let p = unsafe { bindings::rust_mm_alloc_page_vma(gfp, vma, addr) };
            NonNull::new(p)?
        } else {
            // SAFETY: As above.
            let f = unsafe { bindings::rust_mm_vma_alloc_folio(gfp, order, vma, addr) };
            // A folio is its head page (see `FolioRef::head`).
            NonNull::new(f)?.cast()
        };
        // INVARIANT: The allocator gave us the only reference.
        Some(Self { page, order })
    }

    /// The page, borrowed from `self`, which keeps it allocated.
    pub(crate) fn page(&self) -> PageRef<'_> {
        // INVARIANT: We own the page for as long as `self` is borrowed.
        PageRef(self.page, PhantomData)
    }

    /// Gives up ownership without freeing: the page now belongs to whatever
    /// pointer the caller stores (e.g. a device page's `zone_device_data`).
    pub(crate) fn into_raw(self) -> *mut bindings::page {
        let page = self.page;
        core::mem::forget(self);
        page.as_ptr()
    }

    /// Locks the page, turning the ownership into a [`LockedPage`].
    pub(crate) fn lock(self) -> LockedPage {
        let page = self.page;
        core::mem::forget(self);
        // SAFETY: We own a reference to `page`, so it may be locked.
        unsafe { bindings::rust_mm_lock_page(page.as_ptr()) };
        // INVARIANT: Locked above, reference transferred from `self`.
        LockedPage(page)
    }
}

impl Drop for NewPage {
    fn drop(&mut self) {
        // SAFETY: By the type invariants we own the only reference to a folio of `order`.
        unsafe { bindings::__free_pages(self.page.as_ptr(), self.order) };
    }
}

/// A page the driver holds locked and referenced.
///
/// # Invariants
///
/// The page is a memmap page, locked by us, and we own one reference to it.
pub(crate) struct LockedPage(NonNull<bindings::page>);

impl LockedPage {
    /// Takes over a page that is already locked and referenced, such as a
    /// device page initialised by `zone_device_folio_init()`.
    ///
    /// # Safety
    ///
    /// The caller must own the page lock and one reference and give both up.
    pub(crate) unsafe fn from_locked(page: PageRef<'_>) -> Self {
        // INVARIANT: Guaranteed by the caller.
        Self(page.0)
    }

    /// Takes back a destination page from a migrate pfn that
    /// [`LockedPage::into_migrate_pfn`] produced and that the migration core
    /// has not consumed.
    ///
    /// # Safety
    ///
    /// `mpfn` must come from `into_migrate_pfn` and must not be passed to the
    /// migration core afterwards.
    pub(crate) unsafe fn from_migrate_pfn(mpfn: usize) -> Option<Self> {
        // SAFETY: A migrate pfn made by `into_migrate_pfn` encodes a memmap page.
        let page = unsafe { PageRef::from_migrate_pfn(mpfn) }?.0;
        // INVARIANT: The caller returns the lock and reference `into_migrate_pfn` gave away.
        Some(Self(page))
    }

    /// Pins (`get_user_pages_fast()`) and locks the page that backs the user
    /// address `addr` of the current process, if it is present and is an
    /// ordinary page: `None` for an unmapped or inaccessible address, the zero
    /// page, ZONE_DEVICE pages and pages whose lock someone (the caller
    /// included) already holds: it never sleeps on a page lock, so asking
    /// twice for the same page cannot deadlock.
    pub(crate) fn trylock_user_page(addr: usize) -> Option<Self> {
        let mut p: *mut bindings::page = core::ptr::null_mut();
        // SAFETY: `p` has room for the one page asked for; GUP validates `addr` in the
        // current mm and reports failure through its return value.
        let n = unsafe { bindings::get_user_pages_fast(addr, 1, 0, &mut p) };
        if n != 1 {
            return None;
        }
        // SAFETY: On success GUP stored a referenced memmap page, which stays one while we
        // hold that reference (until `put` or the end of this function's result).
        let page: PageRef<'_> = unsafe { PageRef::from_raw(p) }?;
        let usable = !page.is_zone_device() && !page.is_zero_page();
        // SAFETY: The page is referenced (by GUP), so its lock may be tried.
        if !usable || !unsafe { bindings::rust_mm_trylock_page(page.as_ptr()) } {
            // SAFETY: We own the reference GUP took.
            unsafe { page.put() };
            return None;
        }
        // INVARIANT: Locked above; we own the reference GUP took.
        Some(Self(page.0))
    }

    /// The page, borrowed from `self`, which keeps it referenced.
    pub(crate) fn page(&self) -> PageRef<'_> {
        // INVARIANT: We hold a reference for as long as `self` is borrowed.
        PageRef(self.0, PhantomData)
    }

    /// Hands the locked page to the migration core as a dst entry: the
    /// returned value is `migrate_pfn(pfn)` (VALID and the pfn, no lock flag);
    /// `migrate_vma_finalize()`/`migrate_device_finalize()` unlock and release it.
    pub(crate) fn into_migrate_pfn(self) -> usize {
        let pfn = self.page().pfn();
        core::mem::forget(self);
        // `migrate_pfn()`.
        (pfn << mpfn::SHIFT) | mpfn::VALID
    }
}

impl Drop for LockedPage {
    fn drop(&mut self) {
        // SAFETY: By the type invariants the page is locked by us and we hold a reference.
        unsafe {
            bindings::rust_mm_unlock_page(self.0.as_ptr());
            bindings::rust_mm_put_page(self.0.as_ptr());
        }
    }
}

/// A folio returned locked and referenced by `make_device_exclusive()`.
///
/// # Invariants
///
/// The folio is a memmap folio; we hold its lock and one reference, both
/// dropped on drop.
pub(crate) struct LockedFolio(NonNull<bindings::folio>);

impl LockedFolio {
    /// Takes over a locked and referenced folio.
    ///
    /// # Safety
    ///
    /// The caller must own the folio lock and one reference and give both up.
    pub(crate) unsafe fn from_raw(folio: FolioRef<'_>) -> Self {
        // INVARIANT: Guaranteed by the caller.
        Self(folio.0)
    }
}

impl Drop for LockedFolio {
    fn drop(&mut self) {
        // SAFETY: By the type invariants we hold the lock and a reference.
        unsafe {
            bindings::folio_unlock(self.0.as_ptr());
            bindings::rust_mm_folio_put(self.0.as_ptr());
        }
    }
}

/// Decoding of `MIGRATE_PFN_*` entries (pure bit arithmetic).
pub(crate) mod mpfn {
    use crate::mm::bindings;

    /// `MIGRATE_PFN_VALID`.
    pub(crate) const VALID: usize = bindings::MIGRATE_PFN_VALID as usize;
    /// `MIGRATE_PFN_MIGRATE`.
    pub(crate) const MIGRATE: usize = bindings::MIGRATE_PFN_MIGRATE as usize;
    /// `MIGRATE_PFN_WRITE`.
    pub(crate) const WRITE: usize = bindings::MIGRATE_PFN_WRITE as usize;
    /// `MIGRATE_PFN_COMPOUND`.
    pub(crate) const COMPOUND: usize = bindings::MIGRATE_PFN_COMPOUND as usize;
    /// `MIGRATE_PFN_SHIFT`.
    pub(crate) const SHIFT: u32 = bindings::MIGRATE_PFN_SHIFT;
}

#[kernel::macros::kunit_tests(hmm_dmirror_rs_mm_folio)]
mod tests {
    use super::*;

    /// `is_zone_device()` (read from the page flags in Rust) and `ZeroPfns`
    /// (one read of the zero pfns for many) agree with the C helpers they
    /// replace, on a page of system RAM and on the zero page's pfns.
    #[test]
    fn zone_and_zero_pfn() {
        let page = NewPage::alloc_page(bindings::GFP_KERNEL);
        assert!(page.is_some());
        let Some(page) = page else { return };
        let p = page.page();
        // SAFETY: `p` is a memmap page for as long as `page` lives.
        let c_says = unsafe { bindings::rust_mm_is_zone_device_page(p.as_ptr()) };
        assert!(!p.is_zone_device() && !c_says);
        let zero = ZeroPfns::get();
        assert!(!zero.contains(p.pfn()));
        for pfn in [zero.first, zero.first + zero.extra] {
            assert!(zero.contains(pfn));
            // SAFETY: Any pfn may be compared with the zero pfn.
            assert!(unsafe { bindings::rust_mm_is_zero_pfn(pfn) });
        }
        assert!(!zero.contains(zero.first.wrapping_sub(1)));
        assert!(!zero.contains(zero.first + zero.extra + 1));
    }

    /// The pfn <-> page arithmetic of `memmap` (with `vmemmap` read: the module
    /// is initialised when KUnit runs its suites) agrees with the C helpers.
    #[test]
    fn memmap_matches_helpers() {
        let page = NewPage::alloc_page(bindings::GFP_KERNEL);
        assert!(page.is_some());
        let Some(page) = page else { return };
        let p = page.page();
        // SAFETY: `p` is a memmap page for as long as `page` lives.
        let pfn = unsafe { bindings::rust_mm_page_to_pfn(p.as_ptr()) } as usize;
        assert_eq!(p.pfn(), pfn);
        // SAFETY: As above; `pfn` is its pfn.
        assert_eq!(memmap::pfn_to_page(pfn), unsafe {
            bindings::rust_mm_pfn_to_page(pfn)
        });
        // SAFETY: `migrate_pfn` only encodes.
        let mpfn = unsafe { bindings::rust_mm_migrate_pfn(pfn) };
        // SAFETY: `mpfn` encodes the live page `p`.
        assert_eq!(unsafe { PageRef::from_migrate_pfn(mpfn) }, Some(p));
        // SAFETY: An entry without VALID decodes to nothing.
        assert!(unsafe { PageRef::from_migrate_pfn(mpfn & !mpfn::VALID) }.is_none());
        assert_eq!(page.lock().into_migrate_pfn(), mpfn);
        // `into_migrate_pfn` handed the page over: give back what the dst entry holds.
        // SAFETY: `mpfn` holds the locked page's lock and reference.
        drop(unsafe { LockedPage::from_migrate_pfn(mpfn) });
    }
}
