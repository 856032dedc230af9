// SPDX-License-Identifier: GPL-2.0

//! Page migrations between system and device memory.
//!
//! Owns the `migrate_vma_*()` and `migrate_device_*()` sequences and their
//! src/dst arrays. The types encode the protocol: a [`Collected`] exists only
//! after a successful setup, [`Collected::pages`] consumes it into a
//! [`Migrated`], and whichever of the two is dropped calls the finalize step,
//! so finalize runs exactly once and never before setup. For VMA migrations
//! the VMA borrow (from the mmap read guard, or the fault path) keeps the mmap
//! lock held from setup to finalize. Destination entries are produced by
//! [`crate::page::LockedPage::into_migrate_pfn`]: the driver locks
//! destination pages; entries carry no lock flag.

use crate::{bindings, page::LockedPage};
use core::marker::PhantomData;
use kernel::{
    alloc::flags::GFP_KERNEL, error::to_result, ffi::c_void, mm::virt::VmaRef, page::PAGE_SHIFT,
    prelude::*,
};

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

struct VmaInner {
    args: bindings::migrate_vma,
    src: KVec<usize>,
    dst: KVec<usize>,
}

impl VmaInner {
    fn finalize(&mut self) {
        // SAFETY: `args` went through a successful `migrate_vma_setup` (the only way to
        // build a `VmaInner`) and has not been finalized (the owner drops it right after).
        unsafe { bindings::migrate_vma_finalize(&mut self.args) };
    }
}

fn zeroed_vec(n: usize) -> Result<KVec<usize>> {
    let mut v = KVec::with_capacity(n, GFP_KERNEL)?;
    v.resize(n, 0, GFP_KERNEL)?;
    Ok(v)
}

/// A VMA migration after `migrate_vma_setup()`: src is fixed, dst is being filled.
///
/// # Invariants
///
/// `inner` is `Some` until consumed; it holds arguments accepted by
/// `migrate_vma_setup()`, whose `src`/`dst` point into the owned vectors, and
/// the mmap read lock of the VMA is held for `'a`.
pub(crate) struct Collected<'a> {
    inner: Option<VmaInner>,
    _vma: PhantomData<&'a VmaRef>,
}

impl<'a> Collected<'a> {
    /// `migrate_vma_setup()` on `vma`, whose mm is locked for read while `'a` lasts.
    pub(crate) fn setup(vma: &'a VmaRef, a: VmaMigrateArgs) -> Result<Self> {
        let n = (a.end.saturating_sub(a.start)) >> PAGE_SHIFT;
        let mut src = zeroed_vec(n)?;
        let mut dst = zeroed_vec(n)?;
        let args = bindings::migrate_vma {
            vma: vma.as_ptr(),
            src: src.as_mut_ptr().cast(),
            dst: dst.as_mut_ptr().cast(),
            start: a.start,
            end: a.end,
            pgmap_owner: a.owner.cast_mut(),
            flags: a.flags as usize,
            fault_page: a.fault_page,
            ..Default::default()
        };
        let mut inner = VmaInner { args, src, dst };
        // SAFETY: `args` describes a VMA whose mmap lock the caller holds for `'a`, and
        // arrays of `(end - start) >> PAGE_SHIFT` entries that live in `inner`.
        to_result(unsafe { bindings::migrate_vma_setup(&mut inner.args) })?;
        // INVARIANT: Setup succeeded.
        Ok(Self {
            inner: Some(inner),
            _vma: PhantomData,
        })
    }

    fn inner(&self) -> Option<&VmaInner> {
        self.inner.as_ref()
    }

    /// The start address.
    pub(crate) fn start(&self) -> usize {
        self.inner().map_or(0, |i| i.args.start)
    }

    /// The end address.
    pub(crate) fn end(&self) -> usize {
        self.inner().map_or(0, |i| i.args.end)
    }

    /// The VMA.
    pub(crate) fn vma(&self) -> *mut bindings::vm_area_struct {
        self.inner().map_or(core::ptr::null_mut(), |i| i.args.vma)
    }

    /// The src entries and the dst entries to fill.
    pub(crate) fn arrays(&mut self) -> (&[usize], &mut [usize]) {
        match self.inner.as_mut() {
            Some(i) => (&i.src[..], &mut i.dst[..]),
            None => (&[], &mut []),
        }
    }

    /// `migrate_vma_pages()`: dst is now fixed.
    pub(crate) fn pages(mut self) -> Migrated<'a> {
        let mut inner = self.inner.take();
        if let Some(i) = inner.as_mut() {
            // SAFETY: Setup succeeded and neither pages nor finalize ran (type invariants).
            unsafe { bindings::migrate_vma_pages(&mut i.args) };
        }
        // INVARIANT: `migrate_vma_pages` ran on `inner`.
        Migrated {
            inner,
            _vma: PhantomData,
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
        for e in dst.iter_mut() {
            // SAFETY: The driver fills dst entries only with `LockedPage::into_migrate_pfn`
            // (plus flags), and the migration core has not seen them (no `pages()` ran).
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
}

impl Migrated<'_> {
    /// The src entries (MIGRATE is clear where the page did not move).
    pub(crate) fn src(&self) -> &[usize] {
        self.inner.as_ref().map_or(&[], |i| &i.src[..])
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

    /// The src entries and the dst entries to fill.
    pub(crate) fn arrays(&mut self) -> (&[usize], &mut [usize]) {
        (&self.src[..], &mut self.dst[..])
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
