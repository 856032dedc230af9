// SPDX-License-Identifier: GPL-2.0

//! Page migrations between system and device memory.
//!
//! Owns the `migrate_vma_*()` and `migrate_device_*()` sequences and their
//! src/dst arrays ([`PfnArrays`]). The types encode the protocol: a
//! [`Collected`] exists only after a successful setup, [`Collected::pages`]
//! consumes it into a [`Migrated`], and whichever of the two is dropped calls
//! the finalize step, so finalize runs exactly once and never before setup. For VMA migrations
//! the VMA borrow (from the mmap read guard, or the fault path) keeps the mmap
//! lock held from setup to finalize. Destination entries are produced by
//! [`crate::mm::folio::LockedPage::into_migrate_pfn`]: the driver locks
//! destination pages; entries carry no lock flag.

use crate::mm::{
    bindings,
    folio::{mpfn, LockedPage, PageRef, Pages},
};
use core::marker::PhantomData;
use kernel::{
    alloc::flags::GFP_KERNEL, error::to_result, ffi::c_void, mm::virt::VmaRef, page::PAGE_SHIFT,
    prelude::*,
};

/// A page of a migration entry, with the entry's flags.
///
/// # Invariants
///
/// `page` is the page of a valid src or dst entry, held locked and
/// referenced by the migration for `'a`; when `large`
/// (`MIGRATE_PFN_COMPOUND`) it is the head of a large folio that the entry
/// stands for whole.
#[derive(Clone, Copy)]
pub(crate) struct MigratePage<'a> {
    page: PageRef<'a>,
    write: bool,
    large: bool,
}

impl<'a> MigratePage<'a> {
    /// Decodes a valid entry, `None` without `MIGRATE_PFN_VALID`.
    ///
    /// # Safety
    ///
    /// A valid `e` encodes a page the migration holds locked and referenced
    /// for `'a`.
    unsafe fn decode(e: usize) -> Option<Self> {
        // SAFETY: Guaranteed by the caller; `from_migrate_pfn` returns `None` without VALID.
        let page = unsafe { PageRef::from_migrate_pfn(e) }?;
        // INVARIANT: The migration core sets COMPOUND only with the head of a large folio
        // (collect) and `DstSlots::set` only for the head of a new large folio.
        Some(Self {
            page,
            write: e & mpfn::WRITE != 0,
            large: e & mpfn::COMPOUND != 0,
        })
    }

    /// The page (the head of the folio when [`MigratePage::is_large`]).
    pub(crate) fn page(&self) -> PageRef<'a> {
        self.page
    }

    /// Whether the entry is writable (`MIGRATE_PFN_WRITE`).
    pub(crate) fn writable(&self) -> bool {
        self.write
    }

    /// Whether the entry stands for a whole large folio (`MIGRATE_PFN_COMPOUND`).
    pub(crate) fn is_large(&self) -> bool {
        self.large
    }

    /// The pages the entry stands for: the folio's for a large entry, the page
    /// alone otherwise.
    pub(crate) fn pages(&self) -> Pages<'a> {
        if self.large {
            self.page.folio().pages()
        } else {
            Pages::one(self.page)
        }
    }
}

/// The flags of a selected src entry (`MIGRATE_PFN_MIGRATE`), without its
/// page: for loops that need only the extent of what moves.
#[derive(Clone, Copy)]
pub(crate) struct Selected {
    /// The entry has a page (`MIGRATE_PFN_VALID`), it is not a hole.
    pub(crate) has_page: bool,
    /// The entry stands for a large folio or PMD hole (`MIGRATE_PFN_COMPOUND`).
    pub(crate) large: bool,
}

impl Selected {
    fn of(s: usize) -> Option<Self> {
        (s & mpfn::MIGRATE != 0).then_some(Self {
            has_page: s & mpfn::VALID != 0,
            large: s & mpfn::COMPOUND != 0,
        })
    }
}

/// A source entry of a migration being filled, as the driver matches on it.
#[derive(Clone, Copy)]
pub(crate) enum Src<'a> {
    /// Not selected (no `MIGRATE_PFN_MIGRATE`): whatever is there stays.
    Skip,
    /// Selected without a page: an empty PTE, an empty PMD (`large`, for
    /// `HPAGE_PMD_NR` entries) or the zero page. The destination is new memory
    /// that the driver clears.
    Hole {
        /// `MIGRATE_PFN_WRITE`.
        write: bool,
        /// `MIGRATE_PFN_COMPOUND`.
        large: bool,
    },
    /// A selected page of system memory.
    System(MigratePage<'a>),
    /// A selected ZONE_DEVICE page.
    Device(MigratePage<'a>),
}

/// The source entries of a migration being filled, whose selected pages
/// the migration holds locked and referenced for `'a`.
///
/// The driver gets each entry decoded ([`SrcEntries::get`]); the `mpfn`
/// bits stay in this module.
///
/// # Invariants
///
/// `src` is the src array of a migration after its setup and before its
/// `*_pages()` step: every entry with `MIGRATE_PFN_MIGRATE` and
/// `MIGRATE_PFN_VALID` encodes a page the migration holds locked and
/// referenced for `'a`.
#[derive(Clone, Copy)]
pub(crate) struct SrcEntries<'a> {
    src: &'a [usize],
}

impl<'a> SrcEntries<'a> {
    /// The number of entries.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.src.len()
    }

    /// The flags of entry `i` if it is selected, without looking at its page
    /// (no call into C).
    #[inline]
    pub(crate) fn selected(&self, i: usize) -> Option<Selected> {
        Selected::of(self.src.get(i).copied().unwrap_or(0))
    }

    /// Entry `i` ([`Src::Skip`] out of range).
    #[inline]
    pub(crate) fn get(&self, i: usize) -> Src<'a> {
        let s = self.src.get(i).copied().unwrap_or(0);
        if s & mpfn::MIGRATE == 0 {
            return Src::Skip;
        }
        // SAFETY: By the type invariants a selected valid entry encodes a page that is
        // locked and referenced for `'a`.
        match unsafe { MigratePage::decode(s) } {
            None => Src::Hole {
                write: s & mpfn::WRITE != 0,
                large: s & mpfn::COMPOUND != 0,
            },
            Some(p) if p.page.is_zone_device() => Src::Device(p),
            Some(p) => Src::System(p),
        }
    }
}

/// The destination entries of a migration being filled.
///
/// Only owned, locked pages go in ([`DstSlots::set`]), so every valid entry
/// holds a page lock and a reference that the migration core (or
/// [`Collected::abandon`]) releases. Before, the driver got the dst array as
/// `&mut [usize]` and could store any number in it from safe code, which
/// `abandon()` and finalize would then have taken for a page.
///
/// # Invariants
///
/// Every entry of `dst` with `MIGRATE_PFN_VALID` set was made by
/// [`LockedPage::into_migrate_pfn`] (plus `WRITE`/`COMPOUND`) and holds that
/// page's lock and reference; the others are 0.
pub(crate) struct DstSlots<'a> {
    dst: &'a mut [usize],
}

impl<'a> DstSlots<'a> {
    /// # Safety
    ///
    /// Every entry of `dst` is 0 or satisfies the type invariants, and the
    /// migration core has not consumed them yet.
    unsafe fn new(dst: &'a mut [usize]) -> Self {
        // INVARIANT: Guaranteed by the caller.
        Self { dst }
    }

    /// The number of entries.
    pub(crate) fn len(&self) -> usize {
        self.dst.len()
    }

    /// Hands `page` to the migration as the destination of entry `i`
    /// (`migrate_pfn()` plus `MIGRATE_PFN_WRITE` if `write`, plus
    /// `MIGRATE_PFN_COMPOUND` if `compound`); a page already there is
    /// unlocked and released. Out of range, `page` is released.
    #[inline]
    pub(crate) fn set(&mut self, i: usize, page: LockedPage, write: bool, compound: bool) {
        let Some(slot) = self.dst.get_mut(i) else {
            return;
        };
        if *slot != 0 {
            // SAFETY: By the type invariants a non-zero entry holds a page we own.
            drop(unsafe { LockedPage::from_migrate_pfn(*slot) });
        }
        let mut e = page.into_migrate_pfn();
        if write {
            e |= mpfn::WRITE;
        }
        if compound {
            e |= mpfn::COMPOUND;
        }
        // INVARIANT: `e` was made by `into_migrate_pfn` plus flags, and holds its page.
        *slot = e;
    }

    /// The raw entry `i` (0 if out of range), for the tests of the encoding.
    #[cfg(CONFIG_KUNIT)]
    fn raw(&self, i: usize) -> usize {
        self.dst.get(i).copied().unwrap_or(0)
    }

    /// The page set for entry `i`, locked and referenced by the migration while
    /// `self` is borrowed.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<MigratePage<'_>> {
        let e = self.dst.get(i).copied().unwrap_or(0);
        // SAFETY: By the type invariants a valid entry holds a locked, referenced page, kept
        // until the migration consumes it, which needs `self` to be gone.
        unsafe { MigratePage::decode(e) }
    }
}

/// The arguments of a VMA migration.
pub(crate) struct VmaMigrateArgs {
    /// Start address (page aligned).
    pub(crate) start: usize,
    /// End address (exclusive, page aligned, inside the VMA).
    pub(crate) end: usize,
    /// `pgmap_owner`.
    pub(crate) owner: *const c_void,
    /// `MIGRATE_VMA_SELECT_*` flags.
    pub(crate) flags: u32,
    /// The locked device page of a CPU fault, or NULL.
    pub(crate) fault_page: *mut bindings::page,
}

/// The src and dst arrays of VMA migrations (`migrate_vma.src`/`dst`).
///
/// One value serves every window of a command: the heap arrays are allocated
/// by the first window that needs them and reused (the C driver allocates its
/// arrays once per command too). Up to [`PfnArrays::INLINE`] pages they live
/// inline, so a CPU fault on a base page allocates nothing (the C driver
/// `kcalloc()`s two one-entry arrays per fault).
pub(crate) struct PfnArrays {
    inline: [usize; 2 * PfnArrays::INLINE],
    heap: KVec<usize>,
}

impl PfnArrays {
    /// Entries per array kept inline.
    pub(crate) const INLINE: usize = 16;

    /// Empty arrays; nothing is allocated yet.
    pub(crate) const fn new() -> Self {
        Self {
            inline: [0; 2 * Self::INLINE],
            heap: KVec::new(),
        }
    }

    /// Zeroed src and dst arrays of `n` entries each, as raw pointers that stay
    /// valid until `self` is used again.
    fn zeroed(&mut self, n: usize) -> Result<(*mut usize, *mut usize)> {
        let both = if n <= Self::INLINE {
            let both = &mut self.inline[..2 * n];
            both.fill(0);
            both
        } else {
            self.heap.clear();
            self.heap
                .resize(n.checked_mul(2).ok_or(ENOMEM)?, 0, GFP_KERNEL)?;
            &mut self.heap[..]
        };
        let src = both.as_mut_ptr();
        // SAFETY: `both` has `2 * n` entries, so `src + n` is in it (or one past its end
        // when `n` is 0).
        Ok((src, unsafe { src.add(n) }))
    }
}

struct VmaInner {
    args: bindings::migrate_vma,
    /// Entries in each of `args.src` and `args.dst`.
    n: usize,
}

impl VmaInner {
    fn finalize(&mut self) {
        // SAFETY: `args` went through a successful `migrate_vma_setup` (the only way to
        // build a `VmaInner`) and has not been finalized (the owner drops it right after).
        unsafe { bindings::migrate_vma_finalize(&mut self.args) };
    }

    fn src(&self) -> &[usize] {
        // SAFETY: `args.src` points to `n` entries of the `PfnArrays` that the owning
        // `Collected`/`Migrated` borrows mutably, and that are only accessed through
        // `args` (type invariants); the kernel writes them only inside the
        // `migrate_vma_*()` calls, which take `&mut self`.
        unsafe { core::slice::from_raw_parts(self.args.src.cast::<usize>(), self.n) }
    }

    fn dst(&self) -> &[usize] {
        // SAFETY: As in `src`: `args.dst` is the other half of the same arrays.
        unsafe { core::slice::from_raw_parts(self.args.dst.cast::<usize>(), self.n) }
    }

    fn arrays(&mut self) -> (SrcEntries<'_>, DstSlots<'_>) {
        // SAFETY: As in `src`; `args.dst` is the other half of the arrays, disjoint from
        // `args.src`, and `&mut self` makes the borrow exclusive.
        let dst = unsafe { core::slice::from_raw_parts_mut(self.args.dst.cast::<usize>(), self.n) };
        // INVARIANT: Setup ran and `migrate_vma_pages` has not (only a `Collected` calls
        // this), so the selected src pages are locked and referenced while `self` is
        // borrowed.
        let src = SrcEntries { src: self.src() };
        // SAFETY: The dst array was zeroed before setup and is only written through
        // `DstSlots`; `migrate_vma_pages` has not run.
        (src, unsafe { DstSlots::new(dst) })
    }
}

/// A VMA migration after `migrate_vma_setup()`: src is fixed, dst is being filled.
///
/// # Invariants
///
/// `inner` is `Some` until consumed; it holds arguments accepted by
/// `migrate_vma_setup()`, whose `src`/`dst` point to `n` entries each of the
/// [`PfnArrays`] borrowed for `'a` and are the only way those entries are
/// accessed; the mmap read lock of the VMA is held for `'a`.
pub(crate) struct Collected<'a> {
    inner: Option<VmaInner>,
    vma: &'a VmaRef,
    _arrays: PhantomData<&'a mut PfnArrays>,
}

impl<'a> Collected<'a> {
    /// `migrate_vma_setup()` on `vma`, whose mm is locked for read while `'a` lasts,
    /// with src/dst in `arrays`.
    pub(crate) fn setup(
        vma: &'a VmaRef,
        a: VmaMigrateArgs,
        arrays: &'a mut PfnArrays,
    ) -> Result<Self> {
        let n = (a.end.saturating_sub(a.start)) >> PAGE_SHIFT;
        let (src, dst) = arrays.zeroed(n)?;
        let args = bindings::migrate_vma {
            vma: vma.as_ptr(),
            src: src.cast(),
            dst: dst.cast(),
            start: a.start,
            end: a.end,
            pgmap_owner: a.owner.cast_mut(),
            flags: a.flags as usize,
            fault_page: a.fault_page,
            ..Default::default()
        };
        let mut inner = VmaInner { args, n };
        // SAFETY: `args` describes a VMA whose mmap lock the caller holds for `'a`, and
        // arrays of `(end - start) >> PAGE_SHIFT` zeroed entries in `arrays`, borrowed
        // for `'a`.
        to_result(unsafe { bindings::migrate_vma_setup(&mut inner.args) })?;
        // INVARIANT: Setup succeeded; `arrays` stays borrowed and untouched for `'a`.
        Ok(Self {
            inner: Some(inner),
            vma,
            _arrays: PhantomData,
        })
    }

    fn inner(&self) -> Option<&VmaInner> {
        self.inner.as_ref()
    }

    /// The start address.
    pub(crate) fn start(&self) -> usize {
        self.inner().map_or(0, |i| i.args.start)
    }

    /// The VMA, locked for read for `'a`.
    pub(crate) fn vma(&self) -> &'a VmaRef {
        self.vma
    }

    /// The src entries and the dst entries to fill.
    pub(crate) fn arrays(&mut self) -> (SrcEntries<'_>, DstSlots<'_>) {
        match self.inner.as_mut() {
            Some(i) => i.arrays(),
            // SAFETY: An empty array has no entries.
            None => (SrcEntries { src: &[] }, unsafe { DstSlots::new(&mut []) }),
        }
    }

    /// `migrate_vma_pages()`: dst is now fixed.
    pub(crate) fn pages(mut self) -> Migrated<'a> {
        let mut inner = self.inner.take();
        if let Some(i) = inner.as_mut() {
            // SAFETY: Setup succeeded and neither pages nor finalize ran (type invariants).
            unsafe { bindings::migrate_vma_pages(&mut i.args) };
        }
        // INVARIANT: `migrate_vma_pages` ran on `inner`, whose arrays stay borrowed.
        Migrated {
            inner,
            _vma: PhantomData,
            _arrays: PhantomData,
        }
    }

    /// Gives up after the driver filled some dst entries: every destination
    /// page there is unlocked and released and its entry cleared, then
    /// `migrate_vma_finalize()` restores every source. (Finalizing with the
    /// entries in place, as the C driver does when an allocation fails half
    /// way, installs pages that were never migrated: a WARNING in
    /// `migration_entry_wait()`, a hung task and bad rss counters.)
    pub(crate) fn abandon(mut self) {
        let (_, dst) = self.arrays();
        for e in dst.dst.iter_mut() {
            // SAFETY: By the invariants of `DstSlots`, a valid entry holds a locked page we
            // own, which the migration core has not seen (no `pages()` ran).
            drop(unsafe { LockedPage::from_migrate_pfn(*e) });
            *e = 0;
        }
    }
}

impl Drop for Collected<'_> {
    fn drop(&mut self) {
        if let Some(mut i) = self.inner.take() {
            i.finalize();
        }
    }
}

/// A VMA migration after `migrate_vma_pages()`; finalized on drop.
///
/// # Invariants
///
/// As [`Collected`], and `migrate_vma_pages()` ran.
pub(crate) struct Migrated<'a> {
    inner: Option<VmaInner>,
    _vma: PhantomData<&'a VmaRef>,
    _arrays: PhantomData<&'a mut PfnArrays>,
}

impl Migrated<'_> {
    fn src(&self) -> &[usize] {
        self.inner.as_ref().map_or(&[], |i| i.src())
    }

    /// The number of entries.
    pub(crate) fn len(&self) -> usize {
        self.src().len()
    }

    /// Src entry `i` if it moved (`MIGRATE_PFN_MIGRATE` is cleared where it
    /// did not), `None` otherwise or out of range.
    pub(crate) fn moved(&self, i: usize) -> Option<Selected> {
        Selected::of(self.src().get(i).copied().unwrap_or(0))
    }

    /// The number of entries whose page moved (`cpages` of the C driver's
    /// migration back to system memory).
    pub(crate) fn moved_pages(&self) -> usize {
        (0..self.len())
            .filter(|&i| self.moved(i).is_some_and(|m| m.has_page))
            .count()
    }

    /// The new page of dst entry `i` (`None` without one), borrowed from the
    /// migration, which holds it locked and referenced until finalize.
    pub(crate) fn dst(&self, i: usize) -> Option<MigratePage<'_>> {
        let d = self
            .inner
            .as_ref()
            .and_then(|inner| inner.dst().get(i).copied())
            .unwrap_or(0);
        // SAFETY: A valid dst entry was made by `DstSlots::set` from a `LockedPage`, whose
        // lock and reference the migration holds until finalize, which needs `self`.
        unsafe { MigratePage::decode(d) }
    }

    /// The start address.
    pub(crate) fn start(&self) -> usize {
        self.inner.as_ref().map_or(0, |i| i.args.start)
    }

    /// `migrate_vma_finalize()` (also what drop does).
    pub(crate) fn finalize(self) {}
}

impl Drop for Migrated<'_> {
    fn drop(&mut self) {
        if let Some(mut i) = self.inner.take() {
            i.finalize();
        }
    }
}

/// A migration of a pfn range of device memory back to the system, without a VMA.
///
/// # Invariants
///
/// `migrate_device_range()` ran on `src` for `start_pfn..start_pfn + src.len()`;
/// `pages_done` tells whether `migrate_device_pages()` ran; finalize runs on drop.
pub(crate) struct DeviceMigration {
    src: KVVec<usize>,
    dst: KVVec<usize>,
    pages_done: bool,
}

impl DeviceMigration {
    /// `migrate_device_range(src, start_pfn, npages)`.
    ///
    /// # Safety
    ///
    /// `start_pfn..start_pfn + npages` must be the pfns of a registered device chunk.
    pub(crate) unsafe fn range(start_pfn: usize, npages: usize) -> Result<Self> {
        let mut src = KVVec::with_capacity(npages, GFP_KERNEL)?;
        src.resize(npages, 0, GFP_KERNEL)?;
        let mut dst = KVVec::with_capacity(npages, GFP_KERNEL)?;
        dst.resize(npages, 0, GFP_KERNEL)?;
        // SAFETY: `src` has `npages` entries; the caller guarantees the pfn range. The C
        // driver ignores the return value too: on error no entry is selected.
        let _ =
            unsafe { bindings::migrate_device_range(src.as_mut_ptr().cast(), start_pfn, npages) };
        // INVARIANT: `migrate_device_range` ran.
        Ok(Self {
            src,
            dst,
            pages_done: false,
        })
    }

    /// The src entries and the dst entries to fill (empty once
    /// [`DeviceMigration::pages`] ran).
    pub(crate) fn arrays(&mut self) -> (SrcEntries<'_>, DstSlots<'_>) {
        if self.pages_done {
            // SAFETY: An empty array has no entries.
            return (SrcEntries { src: &[] }, unsafe { DstSlots::new(&mut []) });
        }
        // INVARIANT: `migrate_device_range` ran and `migrate_device_pages` has not: the
        // selected pages are locked and referenced until finalize, after `self`.
        let src = SrcEntries { src: &self.src[..] };
        // SAFETY: `dst` was zeroed and is only written through `DstSlots`; the migration
        // core has not seen it (`migrate_device_pages` has not run).
        (src, unsafe { DstSlots::new(&mut self.dst[..]) })
    }

    /// `migrate_device_pages()`; only the first call has an effect.
    pub(crate) fn pages(&mut self) {
        if self.pages_done {
            return;
        }
        self.pages_done = true;
        let n = self.src.len();
        // SAFETY: `migrate_device_range` ran on `src` (type invariants); both arrays have
        // `n` entries.
        unsafe {
            bindings::migrate_device_pages(
                self.src.as_mut_ptr().cast(),
                self.dst.as_mut_ptr().cast(),
                n,
            )
        };
    }
}

impl Drop for DeviceMigration {
    fn drop(&mut self) {
        let n = self.src.len();
        // SAFETY: `migrate_device_range` ran on `src` and finalize has not (type invariants).
        unsafe {
            bindings::migrate_device_finalize(
                self.src.as_mut_ptr().cast(),
                self.dst.as_mut_ptr().cast(),
                n,
            )
        };
    }
}

#[kernel::macros::kunit_tests(hmm_dmirror_rs_mm_migrate)]
mod tests {
    use super::*;
    use crate::mm::folio::NewPage;

    #[test]
    fn mpfn_bits() {
        // The `MIGRATE_PFN_*` encoding of include/linux/migrate.h.
        assert_eq!(mpfn::VALID, 1 << 0);
        assert_eq!(mpfn::MIGRATE, 1 << 1);
        assert_eq!(mpfn::WRITE, 1 << 3);
        assert_eq!(mpfn::COMPOUND, 1 << 4);
        assert_eq!(mpfn::SHIFT, 6);
    }

    #[test]
    fn src_entries_decode() {
        let page = NewPage::alloc_page(bindings::GFP_KERNEL);
        assert!(page.is_some());
        let Some(page) = page else { return };
        let page = page.lock();
        let pfn = page.page().pfn();
        let e = page.into_migrate_pfn();
        let arr = [
            0,
            e,
            mpfn::MIGRATE,
            mpfn::MIGRATE | mpfn::COMPOUND,
            e | mpfn::MIGRATE | mpfn::WRITE,
        ];
        // INVARIANT: The one selected valid entry holds the page locked and referenced.
        let src = SrcEntries { src: &arr };
        assert!(matches!(src.get(0), Src::Skip));
        // Valid but not selected: collect did not take it.
        assert!(matches!(src.get(1), Src::Skip));
        assert!(matches!(
            src.get(2),
            Src::Hole {
                write: false,
                large: false
            }
        ));
        assert!(matches!(src.get(3), Src::Hole { large: true, .. }));
        assert!(matches!(src.get(4), Src::System(_)));
        if let Src::System(p) = src.get(4) {
            assert_eq!(p.page().pfn(), pfn);
            assert!(p.writable() && !p.is_large());
            assert_eq!(p.pages().first().pfn(), pfn);
        }
        assert!(matches!(src.get(5), Src::Skip));
        assert!(src.selected(1).is_none());
        assert!(src
            .selected(3)
            .is_some_and(|sel| !sel.has_page && sel.large));
        assert!(src
            .selected(4)
            .is_some_and(|sel| sel.has_page && !sel.large));
        // SAFETY: `e` holds the page locked and referenced; nothing else consumes it.
        drop(unsafe { LockedPage::from_migrate_pfn(e) });
    }

    #[test]
    fn dst_slots_take_locked_pages() {
        let mut arr = [0usize; 2];
        // SAFETY: The array is zeroed and no migration core sees it.
        let mut slots = unsafe { DstSlots::new(&mut arr) };
        let page = NewPage::alloc_page(bindings::GFP_KERNEL);
        assert!(page.is_some());
        let Some(page) = page else { return };
        let page = page.lock();
        let pfn = page.page().pfn();
        slots.set(0, page, true, false);
        let e = slots.raw(0);
        assert_eq!(
            e & (mpfn::VALID | mpfn::WRITE | mpfn::COMPOUND),
            mpfn::VALID | mpfn::WRITE
        );
        assert_eq!(e >> mpfn::SHIFT, pfn);
        let got = slots.get(0);
        assert_eq!(got.map(|p| p.page().pfn()), Some(pfn));
        assert_eq!(
            got.map(|p| (p.writable(), p.is_large())),
            Some((true, false))
        );
        assert_eq!(got.map(|p| p.pages().len()), Some(1));
        assert!(slots.get(1).is_none());
        assert_eq!(slots.raw(2), 0);
        for e in arr.iter_mut() {
            // SAFETY: A valid entry was made by `DstSlots::set` and holds its page, which no
            // migration consumed.
            drop(unsafe { LockedPage::from_migrate_pfn(*e) });
            *e = 0;
        }
    }
}
