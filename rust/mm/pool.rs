// SPDX-License-Identifier: GPL-2.0

//! A pool of device memory: the registered page maps of one device and their
//! free pages.
//!
//! C header: [`include/linux/memremap.h`](srctree/include/linux/memremap.h).
//!
//! [`DevicePool`] owns its [`DevPagemap`]s (added on demand, removed all at
//! once after [`PagemapOps::evict`]) and two free lists of their pages:
//! order-0 pages and heads of free, naturally aligned blocks of
//! `HPAGE_PMD_NR` pages, linked through the free pages' `zone_device_data`
//! (a free device page belongs to its driver; `zone_device_folio_init()`
//! overwrites the field of no page but the head's, which the allocation sets).
//! An order-0 request splits a free block when no order-0 page is left.
//!
//! An allocation is a [`FreePage`]: a page off the lists that holds a
//! reference on its map's `pgmap->ref`, so `memunmap_pages()` of a
//! concurrent removal waits until the page is initialised (it then holds
//! its own references) or given back. [`FreePage::init`] stores the driver's
//! per-page data and initialises the folio, locked with one reference.
//! Freed folios come back through the `folio_free` callback of their map.
//!
//! Lock order: the maps mutex, then the free-list spinlock.

use crate::mm::{
    bindings,
    folio::{LockedPage, PageRef},
    memremap::{ChunkKind, DevPagemap, PagemapOps},
};
use core::ptr::NonNull;
use kernel::{
    ffi::c_void,
    new_mutex, new_spinlock,
    prelude::*,
    sync::{Mutex, SpinLock},
};

/// `HPAGE_PMD_NR`: the pages of a large block.
const BLOCK_PAGES: usize = bindings::HPAGE_PMD_NR;
/// `HPAGE_PMD_ORDER`.
const BLOCK_ORDER: u32 = bindings::HPAGE_PMD_ORDER;

/// A page on a free list.
type Link = NonNull<bindings::page>;

/// The free lists of a pool.
///
/// # Invariants
///
/// `pages` and `blocks` are lists of free pages (refcount 0) of maps that the
/// pool owns and that are not being removed, linked through
/// `zone_device_data`: order-0 pages, and heads of free blocks of
/// `BLOCK_PAGES` pages of one map, naturally aligned. No page is on a list
/// twice, and no page on a list is held by a [`FreePage`].
struct FreeLists {
    pages: Option<Link>,
    blocks: Option<Link>,
}

// SAFETY: The lists hold memmap pointers of the pool's maps, usable from any thread.
unsafe impl Send for FreeLists {}

impl FreeLists {
    /// The list of order-0 pages or of blocks.
    fn list(&mut self, large: bool) -> &mut Option<Link> {
        if large {
            &mut self.blocks
        } else {
            &mut self.pages
        }
    }

    /// A page on a list, borrowed for as long as the lists are.
    fn page(&self, link: Link) -> PageRef<'_> {
        // SAFETY: By the type invariants `link` is a page of a registered map the pool owns;
        // a map leaves the pool only after its pages left the lists, which needs `&mut self`.
        unsafe { PageRef::from_non_null(link) }
    }

    /// The link stored in a listed page.
    fn next(&self, link: Link) -> Option<Link> {
        NonNull::new(self.page(link).zone_device_data().cast())
    }

    /// Puts `page` on a list.
    ///
    /// # Safety
    ///
    /// `page` must be a free page (or the head of a free, naturally aligned
    /// block when `large`) of a map the pool owns and that is not being
    /// removed, on no list and held by nobody.
    unsafe fn push(&mut self, page: PageRef<'_>, large: bool) {
        let next = self
            .list(large)
            .map_or(core::ptr::null_mut(), |p| p.as_ptr().cast::<c_void>());
        // SAFETY: A free device page belongs to the pool; the field links the list.
        unsafe { page.set_zone_device_data(next) };
        // INVARIANT: Guaranteed by the caller.
        *self.list(large) = Some(page.as_non_null());
    }

    /// Takes a page (or block head) off a list.
    fn pop(&mut self, large: bool) -> Option<Link> {
        if !large && self.pages.is_none() {
            self.split_block();
        }
        let link = (*self.list(large))?;
        let next = self.next(link);
        // INVARIANT: `link` leaves the list; the rest stays linked.
        *self.list(large) = next;
        Some(link)
    }

    /// Breaks one free block into order-0 free pages, so that an order-0
    /// request neither fails nor grows the pool while free blocks remain.
    fn split_block(&mut self) {
        let Some(link) = self.blocks else {
            return;
        };
        self.blocks = self.next(link);
        // SAFETY: As in `page`: `link` was listed, and the caller holds the lists (`&mut self`)
        // for as long as `head` is used.
        let head: PageRef<'_> = unsafe { PageRef::from_non_null(link) };
        for k in (0..BLOCK_PAGES).rev() {
            // SAFETY: A free block is `BLOCK_PAGES` naturally aligned pages of one map (type
            // invariants), so `head + k` is a page of it.
            let page = unsafe { head.nth(k) };
            // SAFETY: The block was free and off the lists, so each of its pages is.
            unsafe { self.push(page, false) };
        }
    }

    /// Drops every page of `map` from both lists.
    fn remove_map<T: PagemapOps>(&mut self, map: &DevPagemap<T>) {
        for large in [false, true] {
            let mut list = self.list(large).take();
            let mut keep: Option<Link> = None;
            while let Some(link) = list {
                list = self.next(link);
                let page = self.page(link);
                if !map.is(page.pgmap()) {
                    let next = keep.map_or(core::ptr::null_mut(), |p| p.as_ptr().cast::<c_void>());
                    // SAFETY: `page` was on a list; the field links the new one.
                    unsafe { page.set_zone_device_data(next) };
                    keep = Some(link);
                }
            }
            // INVARIANT: The same pages but those of `map`.
            *self.list(large) = keep;
        }
    }
}

/// What [`DevicePool::add`] mapped.
pub(crate) struct Added {
    /// The first pfn of the new map.
    pub(crate) pfn_first: usize,
    /// One past its last pfn.
    pub(crate) pfn_last: usize,
    /// The maps of the pool, the new one included.
    pub(crate) maps: usize,
}

/// The device memory of one device: its maps and their free pages.
///
/// # Invariants
///
/// Every map in `maps` was made by [`DevicePool::add`] with a pointer to this
/// (pinned) pool; `free` lists only pages of those maps.
#[pin_data(PinnedDrop)]
pub(crate) struct DevicePool<T: PagemapOps> {
    #[pin]
    maps: Mutex<KVec<Pin<KBox<DevPagemap<T>>>>>,
    #[pin]
    free: SpinLock<FreeLists>,
}

impl<T: PagemapOps> DevicePool<T> {
    /// A pool without memory.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            maps <- new_mutex!(KVec::new()),
            free <- new_spinlock!(FreeLists {
                pages: None,
                blocks: None,
            }),
        })
    }

    /// Maps one more chunk (see [`DevPagemap`]; `ENOMEM` if the pool already
    /// holds `max_maps`), puts its pages on the free lists (every naturally
    /// aligned block whole) and, if `take` is `Some(large)`, takes one page
    /// (or block) for the caller at once, before any other allocation.
    pub(crate) fn add(
        &self,
        kind: ChunkKind,
        name: &'static CStr,
        owner: *const c_void,
        data: T,
        max_maps: usize,
        take: Option<bool>,
    ) -> Result<(Added, Option<FreePage<'_, T>>)> {
        let mut maps = self.maps.lock();
        if maps.len() >= max_maps {
            return Err(ENOMEM);
        }
        let map = KBox::pin_init(DevPagemap::new(kind, name, owner, self, data), GFP_KERNEL)?;
        let added = Added {
            pfn_first: map.pfn_first(),
            pfn_last: map.pfn_first() + map.npages(),
            maps: maps.len() + 1,
        };
        maps.push(map, GFP_KERNEL)?;
        let Some(map) = maps.last() else {
            return Err(EINVAL);
        };
        let mut free = self.free.lock();
        let mut index = 0;
        while let Some(page) = map.page(index) {
            let pfn = added.pfn_first + index;
            let large = pfn % BLOCK_PAGES == 0 && pfn + BLOCK_PAGES <= added.pfn_last;
            // SAFETY: The map was just registered: all its pages are free, on no list and held by
            // nobody; a block starts at an aligned pfn with all its pages in the map.
            unsafe { free.push(page, large) };
            index += if large { BLOCK_PAGES } else { 1 };
        }
        let taken = match take {
            None => None,
            Some(large) => Some(self.take(&mut free, large).ok_or(ENOMEM)?),
        };
        Ok((added, taken))
    }

    /// A free page (or, if `large`, a block of `HPAGE_PMD_NR` pages), `None`
    /// if the lists hold none.
    pub(crate) fn alloc(&self, large: bool) -> Option<FreePage<'_, T>> {
        let mut free = self.free.lock();
        self.take(&mut free, large)
    }

    /// Pops a page and takes a reference on its map.
    fn take(&self, free: &mut FreeLists, large: bool) -> Option<FreePage<'_, T>> {
        loop {
            let link = free.pop(large)?;
            let pgmap = free.page(link).pgmap();
            // SAFETY: A listed page's map is registered (`FreeLists` invariants).
            if unsafe { bindings::rust_mm_pgmap_tryget_live(pgmap) } {
                // INVARIANT: Off the lists, with a reference on its live map.
                return Some(FreePage {
                    page: link,
                    large,
                    pool: self,
                });
            }
            // A map that is going away: its page leaves the lists for good.
        }
    }

    /// Takes back a folio of `map` freed by the `folio_free` callback: its
    /// `1 << order` pages (order 0 or `HPAGE_PMD_ORDER`) go back on a list
    /// unless the map is being removed.
    pub(super) fn recycle(&self, map: &DevPagemap<T>, head: PageRef<'_>, order: u32) {
        let mut free = self.free.lock();
        if !map.removing() {
            // SAFETY: The folio's last reference is gone: its pages are free pages of `map`, a
            // live map of this pool (`map.pool()` is `self`), held by nobody; a freed large
            // folio is an aligned block (device folios are allocated as such).
            unsafe { free.push(head, order == BLOCK_ORDER) };
        }
    }

    /// Whether `page` is a device page of one of this pool's maps.
    pub(crate) fn owns(&self, page: PageRef<'_>) -> bool {
        DevPagemap::<T>::of_page(page).is_some_and(|map| core::ptr::eq(map.pool(), self))
    }

    /// Runs [`PagemapOps::evict`] on every map (the maps stay).
    pub(crate) fn evict_all(&self) {
        let maps = self.maps.lock();
        for map in maps.iter() {
            T::evict(map);
        }
    }

    /// Removes every map: takes its pages off the lists, evicts it
    /// ([`PagemapOps::evict`]) and unmaps it, which waits until each of its
    /// pages is free.
    pub(crate) fn remove_all(&self) {
        let mut maps = self.maps.lock();
        for map in core::mem::take(&mut *maps) {
            {
                let mut free = self.free.lock();
                map.set_removing();
                free.remove_map(&map);
            }
            T::evict(&map);
            drop(map);
        }
    }
}

#[pinned_drop]
impl<T: PagemapOps> PinnedDrop for DevicePool<T> {
    fn drop(self: Pin<&mut Self>) {
        self.remove_all();
    }
}

/// A free page (or the head of a free block) taken off a [`DevicePool`].
///
/// # Invariants
///
/// `page` is a free page (refcount 0) of a map of `pool`, on no list; a
/// block head if `large`. We hold one reference on its map's `pgmap->ref`,
/// so the map stays registered.
pub(crate) struct FreePage<'a, T: PagemapOps> {
    page: Link,
    large: bool,
    pool: &'a DevicePool<T>,
}

impl<T: PagemapOps> FreePage<'_, T> {
    /// The page.
    pub(crate) fn page(&self) -> PageRef<'_> {
        // SAFETY: By the type invariants the map of the page is registered while `self` lives.
        unsafe { PageRef::from_non_null(self.page) }
    }

    /// Stores `data` in the head page's `zone_device_data` (the driver's
    /// per-page data: before the folio gets its first reference, so that an
    /// eviction that finds the page referenced finds the data too) and
    /// initialises the folio (`zone_device_folio_init()`, order 0 or
    /// `HPAGE_PMD_ORDER`): locked, with one reference.
    pub(crate) fn init(self, data: *mut c_void) -> LockedPage {
        let page = self.page();
        let pgmap = page.pgmap();
        let order = if self.large { BLOCK_ORDER } else { 0 };
        // SAFETY: The page is free and ours (type invariants); nothing reads the field of a free
        // page but the pool, which no longer lists it.
        unsafe { page.set_zone_device_data(data) };
        // SAFETY: `page` is a free page (with the whole block when `large`) of a registered map
        // (type invariants); it becomes the head of the new folio even if it was a tail of an
        // earlier, freed one: `zone_device_folio_init` clears every page's stale compound state
        // and returns the folio locked with one reference, taking the map's references for it.
        unsafe { bindings::rust_mm_zone_device_folio_init(page.as_ptr().cast(), pgmap, order) };
        // SAFETY: Locked with one reference, just above; we hand both over.
        let locked = unsafe { LockedPage::from_locked(page) };
        core::mem::forget(self);
        // SAFETY: The reference `take` got on the map; the folio now holds its own.
        unsafe { bindings::rust_mm_pgmap_put(pgmap) };
        locked
    }
}

impl<T: PagemapOps> Drop for FreePage<'_, T> {
    fn drop(&mut self) {
        let page = self.page();
        let pgmap = page.pgmap();
        {
            let mut free = self.pool.free.lock();
            let map = DevPagemap::<T>::of_page(page);
            if map.is_some_and(|m| !m.removing()) {
                // SAFETY: Unused, the page goes back as it came (type invariants).
                unsafe { free.push(page, self.large) };
            }
        }
        // SAFETY: The reference `take` got on the map.
        unsafe { bindings::rust_mm_pgmap_put(pgmap) };
    }
}

#[kernel::macros::kunit_tests(hmm_dmirror_rs_mm_pool)]
mod tests {
    use super::*;
    use crate::mm::{folio::FolioRef, memremap::DeviceFault, migrate::Src};
    use core::sync::atomic::{AtomicUsize, Ordering};
    use kernel::{page::PAGE_SIZE, sync::Arc};

    /// What the callbacks saw.
    #[derive(Default)]
    struct Stats {
        freed_pages: AtomicUsize,
        evictions: AtomicUsize,
        evicted_pages: AtomicUsize,
    }

    /// The map data: the test keeps its own reference to the stats.
    struct Counts(Arc<Stats>);

    impl PagemapOps for Counts {
        fn folio_free(map: &DevPagemap<Self>, folio: FolioRef<'_>) {
            let pages = 1usize << folio.order();
            map.data().0.freed_pages.fetch_add(pages, Ordering::Relaxed);
        }

        fn migrate_to_ram(
            _map: &DevPagemap<Self>,
            _fault: &DeviceFault<'_>,
        ) -> bindings::vm_fault_t {
            bindings::vm_fault_reason_VM_FAULT_SIGBUS
        }

        fn folio_split(_map: &DevPagemap<Self>, _head: FolioRef<'_>, _tail: Option<FolioRef<'_>>) {}

        fn evict(map: &DevPagemap<Self>) {
            let stats = &map.data().0;
            stats.evictions.fetch_add(1, Ordering::Relaxed);
            let Ok(mut m) = map.migrate_all() else {
                return;
            };
            let (src, _dst) = m.arrays();
            let selected = (0..src.len())
                .filter(|&i| !matches!(src.get(i), Src::Skip))
                .count();
            stats.evicted_pages.fetch_add(selected, Ordering::Relaxed);
        }
    }

    /// Registers a small private map (4 MiB asked for, a memory section
    /// given), allocates and frees pages of both kinds through the pool until
    /// it runs out of blocks, checks that a page given back unused is handed
    /// out again, and removes the idle map.
    #[test]
    fn pool_alloc_free_evict() {
        let stats = Arc::new(Stats::default(), GFP_KERNEL);
        assert!(stats.is_ok());
        let Ok(stats) = stats else { return };
        let pool = KBox::pin_init(DevicePool::<Counts>::new(), GFP_KERNEL);
        assert!(pool.is_ok());
        let Ok(pool) = pool else { return };
        if !exercise(&pool, &stats) {
            return;
        }

        // The idle map: evicted once, with no allocated page; removing it
        // evicts it again and unmaps it (`memunmap_pages()` returns: every
        // page is free).
        pool.evict_all();
        assert_eq!(stats.evictions.load(Ordering::Relaxed), 1);
        drop(pool);
        assert_eq!(stats.evictions.load(Ordering::Relaxed), 2);
        assert_eq!(stats.evicted_pages.load(Ordering::Relaxed), 0);
    }

    /// The allocations of `pool_alloc_free_evict` (after it, so that its
    /// `assert!`s are KUnit's); false if it had to stop.
    fn exercise(pool: &DevicePool<Counts>, stats: &Arc<Stats>) -> bool {
        let owner: *const c_void = core::ptr::from_ref(pool).cast();
        let kind = ChunkKind::Private {
            size: 2 * BLOCK_PAGES * PAGE_SIZE,
        };
        let name = c"hmm_dmirror_rs_kunit";
        let added = pool.add(kind, name, owner, Counts(stats.clone()), 1, Some(false));
        assert!(matches!(added, Ok((_, Some(_)))));
        let Ok((added, Some(first))) = added else {
            return false;
        };
        // `request_free_mem_region()` rounds the size up to a memory section.
        let npages = added.pfn_last - added.pfn_first;
        assert!(npages >= 2 * BLOCK_PAGES && npages % BLOCK_PAGES == 0);
        assert_eq!(added.maps, 1);

        // The pool holds its one allowed map.
        let again = pool.add(kind, name, owner, Counts(stats.clone()), 1, None);
        assert!(matches!(again, Err(e) if e == ENOMEM));
        drop(again);

        // An order-0 page split one block; the other block is still whole.
        let small = first.init(core::ptr::null_mut());
        let pfn = small.page().pfn();
        assert!(pool.owns(small.page()) && small.page().is_device_private());
        assert!(small.page().is_zone_device());
        assert!(pfn >= added.pfn_first && pfn < added.pfn_last);
        assert_eq!(small.page().folio().order(), 0);
        let block = pool.alloc(true);
        assert!(block.is_some());
        let Some(block) = block else { return false };
        let block_pfn = block.page().pfn();
        assert_eq!(block_pfn % BLOCK_PAGES, 0);
        // Given back unused, then handed out again.
        drop(block);
        let block = pool.alloc(true);
        assert_eq!(block.as_ref().map(|b| b.page().pfn()), Some(block_pfn));
        let Some(block) = block else { return false };
        let large = block.init(core::ptr::null_mut());
        assert_eq!(large.page().folio().order(), BLOCK_ORDER);
        // The rest: every block but the split one and `large`, then none.
        let mut rest = KVec::new();
        while let Some(b) = pool.alloc(true) {
            if rest.push(b, GFP_KERNEL).is_err() {
                return false;
            }
        }
        assert_eq!(rest.len(), npages / BLOCK_PAGES - 2);
        drop(rest);

        // Freed folios come back through `folio_free`, and to the lists.
        drop(large);
        drop(small);
        assert_eq!(stats.freed_pages.load(Ordering::Relaxed), BLOCK_PAGES + 1);
        let block = pool.alloc(true);
        assert_eq!(block.as_ref().map(|b| b.page().pfn()), Some(block_pfn));
        drop(block);

        true
    }
}
