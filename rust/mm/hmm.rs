// SPDX-License-Identifier: GPL-2.0

//! HMM ranges: `hmm_range_fault()` over a window of at most [`MAX_PAGES`] pages.
//!
//! Owns a `struct hmm_range` together with its pfn array and the notifier it
//! validates against. The locked fault takes the mmap read guard as proof that
//! the lock is held; the unlocked variant takes it itself. [`HmmPfn`] decodes
//! the output entries (pure bit arithmetic).

use crate::mm::{
    bindings,
    folio::{memmap, PageRef},
    mmap::MmapRead,
    mmu_notifier::{IntervalNotifier, IntervalOps},
};
use core::marker::PhantomData;
use kernel::{
    error::to_result,
    ffi::c_void,
    page::PAGE_SHIFT,
    prelude::*,
    sync::{Mutex, MutexGuard},
};

/// Pages per window, as the C driver's on-stack `pfns[32]`.
pub(crate) const MAX_PAGES: usize = 32;

/// `HMM_PFN_VALID`.
pub(crate) const PFN_VALID: usize = bindings::hmm_pfn_flags_HMM_PFN_VALID;
/// `HMM_PFN_WRITE`.
pub(crate) const PFN_WRITE: usize = bindings::hmm_pfn_flags_HMM_PFN_WRITE;
/// `HMM_PFN_ERROR`.
pub(crate) const PFN_ERROR: usize = bindings::hmm_pfn_flags_HMM_PFN_ERROR;
/// `HMM_PFN_REQ_FAULT`.
pub(crate) const REQ_FAULT: usize = bindings::hmm_pfn_flags_HMM_PFN_REQ_FAULT;
/// `HMM_PFN_REQ_WRITE`.
pub(crate) const REQ_WRITE: usize = bindings::hmm_pfn_flags_HMM_PFN_REQ_WRITE;
/// `HMM_PFN_ORDER_SHIFT`.
const ORDER_SHIFT: u32 = bindings::hmm_pfn_flags_HMM_PFN_ORDER_SHIFT as u32;
/// The flag bits of an entry, above the pfn (`HMM_PFN_FLAGS`).
const PFN_FLAGS: usize = bindings::hmm_pfn_flags_HMM_PFN_FLAGS;

/// One output entry of `hmm_range_fault()`, read under a [`Validated`]
/// user lock that keeps its page mapped for `'a`.
///
/// # Invariants
///
/// `raw` is an output entry of a range whose notifier sequence was still
/// current under the notifier's user lock, which is held for `'a`: a valid
/// entry's page stays mapped (hence a memmap page) for `'a`, since an
/// invalidation of it must take that lock first.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct HmmPfn<'a> {
    raw: usize,
    _lock: PhantomData<&'a ()>,
}

impl<'a> HmmPfn<'a> {
    /// `HMM_PFN_VALID` is set.
    pub(crate) const fn is_valid(self) -> bool {
        self.raw & PFN_VALID != 0
    }

    /// `HMM_PFN_WRITE` is set.
    pub(crate) const fn is_write(self) -> bool {
        self.raw & PFN_WRITE != 0
    }

    /// `HMM_PFN_ERROR` is set.
    pub(crate) const fn is_error(self) -> bool {
        self.raw & PFN_ERROR != 0
    }

    /// `hmm_pfn_to_map_order()`.
    pub(crate) const fn map_order(self) -> u32 {
        ((self.raw >> ORDER_SHIFT) & 0x1f) as u32
    }

    /// `hmm_pfn_to_pfn()`: the pfn, meaningful for a valid entry.
    pub(crate) const fn pfn(self) -> usize {
        self.raw & !PFN_FLAGS
    }

    /// `hmm_pfn_to_page()` of a valid entry, borrowed for as long as the
    /// validated user lock is held.
    pub(crate) fn page(self) -> Option<PageRef<'a>> {
        if !self.is_valid() {
            return None;
        }
        // SAFETY: A valid entry encodes the pfn of a page that stays mapped for `'a` (type
        // invariants), so `hmm_pfn_to_page()` is a memmap page for `'a`.
        unsafe { PageRef::from_raw(memmap::pfn_to_page(self.pfn())) }
    }

    /// [`page`](Self::page) for the entry of the address `addr`, which works around
    /// a bug of Linux 7.3: `hmm_vma_handle_absent_pmd()` fills the entries of a
    /// device-private PMD from the PMD's first pfn on, wherever the window starts
    /// (the present-PMD path adds the offset of the address), so every window that
    /// starts inside such a PMD got the pages of its start. For an entry of a
    /// mapping of order `n` of a folio of that order (naturally aligned), the page
    /// is the folio's page at `addr`'s offset, whether the pfn is right or not.
    pub(crate) fn page_at(self, addr: usize) -> Option<PageRef<'a>> {
        let page = self.page()?;
        let order = self.map_order();
        if order == 0 {
            return Some(page);
        }
        let folio = page.folio();
        if folio.order() != order {
            return Some(page);
        }
        // SAFETY: The folio has `1 << order` pages and the index is masked below that.
        Some(unsafe { folio.page((addr >> PAGE_SHIFT) & ((1usize << order) - 1)) })
    }
}

/// A `struct hmm_range` over at most [`MAX_PAGES`] pages of a notifier's mm.
///
/// # Invariants
///
/// `range.notifier` is the inserted notifier borrowed for `'a`; `range.start`
/// and `range.end` are page aligned with at most `MAX_PAGES` pages between them.
pub(crate) struct HmmRange<'a> {
    range: bindings::hmm_range,
    pfns: [kernel::ffi::c_ulong; MAX_PAGES],
    /// The notifier's user lock ([`IntervalOps::lock`]), by address.
    user_lock: *const c_void,
    _notifier: PhantomData<&'a ()>,
}

/// The user lock of a range's notifier, held, with the range's sequence
/// still current under it: the entries of that range may be read with their
/// pages ([`HmmRange::pfns`]) for as long as it lives.
///
/// # Invariants
///
/// `guard` holds the user lock of the notifier `notifier`, and
/// `mmu_interval_read_retry(notifier, seq)` was false under it.
pub(crate) struct Validated<'m, S> {
    guard: MutexGuard<'m, S>,
    notifier: *mut bindings::mmu_interval_notifier,
    seq: usize,
}

impl<S> core::ops::Deref for Validated<'_, S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.guard
    }
}

impl<'a> HmmRange<'a> {
    /// A range validated by `notifier`, with `default_flags` and the device-private owner.
    pub(crate) fn new<T: IntervalOps>(
        notifier: &'a IntervalNotifier<T>,
        default_flags: usize,
        owner: *const c_void,
    ) -> Self {
        let range = bindings::hmm_range {
            notifier: notifier.as_raw(),
            default_flags,
            pfn_flags_mask: 0,
            dev_private_owner: owner.cast_mut(),
            ..Default::default()
        };
        let user_lock: *const Mutex<T::State> = T::lock(notifier.data());
        // INVARIANT: `notifier` is inserted and borrowed for `'a`; the window is empty.
        Self {
            range,
            pfns: [0; MAX_PAGES],
            user_lock: user_lock.cast(),
            _notifier: PhantomData,
        }
    }

    /// Sets the window to `[start, end)`, clipped to [`MAX_PAGES`] pages; returns the end.
    pub(crate) fn set_window(&mut self, start: usize, end: usize) -> usize {
        let end = end.min(start.saturating_add(MAX_PAGES << PAGE_SHIFT));
        self.range.start = start;
        self.range.end = end;
        end
    }

    /// Start of the window.
    pub(crate) fn start(&self) -> usize {
        self.range.start
    }

    /// Number of pages in the window.
    pub(crate) fn npages(&self) -> usize {
        (self.range.end - self.range.start) >> PAGE_SHIFT
    }

    /// The requested default flags.
    pub(crate) fn default_flags(&self) -> usize {
        self.range.default_flags
    }

    /// `range->notifier_seq = mmu_interval_read_begin(range->notifier)`.
    pub(crate) fn read_begin(&mut self) {
        // SAFETY: By the type invariants the notifier is inserted.
        self.range.notifier_seq = unsafe { bindings::mmu_interval_read_begin(self.range.notifier) };
    }

    /// `mmu_interval_read_retry()`; call with the notifier's user lock held.
    pub(crate) fn read_retry(&self) -> bool {
        // SAFETY: By the type invariants the notifier is inserted.
        unsafe {
            bindings::rust_mm_mmu_interval_read_retry(self.range.notifier, self.range.notifier_seq)
        }
    }

    /// `hmm_range_fault()` with the mmap lock of the notifier's mm held for read
    /// (`lock`); `EINVAL` if `lock` locks another mm.
    ///
    /// The check makes the lock a proof: formerly any mm's `MmapReadGuard` was
    /// accepted, and `hmm_range_fault()` would have walked the notifier's mm
    /// without its lock.
    pub(crate) fn fault(&mut self, lock: &MmapRead<'_>) -> Result {
        // SAFETY: By the type invariants the notifier is inserted, so its `mm` is set and
        // grabbed until it is removed, which cannot happen while it is borrowed for `'a`.
        let mm = unsafe { (*self.range.notifier).mm };
        if !core::ptr::eq(mm, lock.mm().as_raw()) {
            return Err(EINVAL);
        }
        self.range.hmm_pfns = self.pfns.as_mut_ptr();
        // SAFETY: The range is valid (type invariants), `hmm_pfns` has room for the
        // window, and the mmap lock of the notifier's mm is held for read (checked above).
        to_result(unsafe { bindings::hmm_range_fault(&mut self.range) })
    }

    /// `hmm_range_fault_unlocked_timeout()`: takes the mmap lock itself and
    /// refreshes the notifier sequence on every internal retry.
    pub(crate) fn fault_unlocked_timeout(&mut self, timeout: usize) -> Result {
        self.range.hmm_pfns = self.pfns.as_mut_ptr();
        // SAFETY: The range is valid (type invariants), `hmm_pfns` has room for the
        // window; the caller does not hold the mmap lock (no guard is taken here).
        to_result(unsafe { bindings::hmm_range_fault_unlocked_timeout(&mut self.range, timeout) })
    }

    /// Takes the notifier's user lock `lock` and checks the sequence under it
    /// (`mmu_interval_read_retry()`): `Ok(None)` if an invalidation bumped it
    /// since [`HmmRange::read_begin`], `EINVAL` if `lock` is not the
    /// notifier's user lock.
    pub(crate) fn validate<'m, S>(&self, lock: &'m Mutex<S>) -> Result<Option<Validated<'m, S>>> {
        if !core::ptr::eq(core::ptr::from_ref(lock).cast(), self.user_lock) {
            return Err(EINVAL);
        }
        let guard = lock.lock();
        if self.read_retry() {
            return Ok(None);
        }
        // INVARIANT: `lock` is the notifier's user lock (checked above), held, and the
        // sequence is current under it.
        Ok(Some(Validated {
            guard,
            notifier: self.range.notifier,
            seq: self.range.notifier_seq,
        }))
    }

    /// The output entries of the window, with their pages borrowed from the
    /// validated lock `v`; `EINVAL` if `v` validated another range or sequence.
    ///
    /// Before, the entries (and their pages) could be read whether or not the
    /// sequence was checked under the user lock.
    pub(crate) fn pfns<'g, S>(
        &'g self,
        v: &'g Validated<'_, S>,
    ) -> Result<impl Iterator<Item = HmmPfn<'g>> + 'g> {
        if v.notifier != self.range.notifier || v.seq != self.range.notifier_seq {
            return Err(EINVAL);
        }
        // INVARIANT: `v` holds the user lock of this range's notifier with this range's
        // sequence current, for `'g`.
        Ok(self.pfns[..self.npages().min(MAX_PAGES)]
            .iter()
            .map(|&raw| HmmPfn {
                raw,
                _lock: PhantomData,
            }))
    }
}

#[kernel::macros::kunit_tests(hmm_dmirror_rs_mm_hmm)]
mod tests {
    use super::*;

    fn entry(raw: usize) -> HmmPfn<'static> {
        HmmPfn {
            raw,
            _lock: PhantomData,
        }
    }

    #[test]
    fn entry_flags() {
        let e = entry(PFN_VALID | PFN_WRITE | (9 << ORDER_SHIFT) | (0x1234 << PAGE_SHIFT));
        assert!(e.is_valid());
        assert!(e.is_write());
        assert!(!e.is_error());
        assert_eq!(e.map_order(), 9);
        let e = entry(PFN_ERROR);
        assert!(e.is_error());
        assert!(!e.is_valid());
        assert!(e.page().is_none());
        assert_eq!(entry(0).map_order(), 0);
        // The flags, the order included, are not part of the pfn.
        let e = entry(PFN_VALID | PFN_WRITE | (9 << ORDER_SHIFT) | 0x1234);
        assert_eq!(e.pfn(), 0x1234);
    }
}
