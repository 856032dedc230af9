// SPDX-License-Identifier: GPL-2.0

//! Device-exclusive access to user pages.
//!
//! Owns [`ExclusivePage`]: what `make_device_exclusive()` hands back, a
//! locked and referenced folio plus the page that the address maps. The CPU
//! mapping of the page is a device-exclusive entry from then on, until the
//! next CPU access or an invalidation; the folio is unlocked and released when
//! the [`ExclusivePage`] is dropped.

use crate::mm::{
    bindings,
    folio::{FolioRef, LockedFolio, PageRef},
    mmap::MmapRead,
};
use core::ptr::NonNull;
use kernel::{
    error::{from_err_ptr, to_result},
    ffi::c_void,
    prelude::*,
};

/// A page made device-exclusive, with its folio held locked.
///
/// # Invariants
///
/// `page` is a page of the folio that `folio` holds locked and referenced.
pub(crate) struct ExclusivePage {
    _folio: LockedFolio,
    page: NonNull<bindings::page>,
}

impl ExclusivePage {
    /// `make_device_exclusive(mm, addr, owner, &folio)` on the mm that `lock`
    /// holds the mmap lock of for read (as the C function requires). `owner` is
    /// only the owner of the conversion's `MMU_NOTIFY_EXCLUSIVE` invalidation,
    /// by which the caller's notifier recognises it (the C driver passes NULL).
    ///
    /// The mm is taken from `lock`, not passed beside it: a lock of another mm
    /// cannot be given as proof (formerly `make(mm, &MmapReadGuard, ..)`
    /// accepted any mm's guard).
    pub(crate) fn make(lock: &MmapRead<'_>, addr: usize, owner: *const c_void) -> Result<Self> {
        let mm = lock.mm();
        let mut folio: *mut bindings::folio = core::ptr::null_mut();
        // SAFETY: `mm` has a user reference (its type) and its mmap lock is held for read
        // (`lock`'s invariant); `folio` is valid for the one write the function makes. The
        // owner cookie is never dereferenced, only passed on to the notifiers.
        let page = unsafe {
            bindings::make_device_exclusive(mm.as_raw(), addr, owner.cast_mut(), &mut folio)
        };
        let page = from_err_ptr(page)?;
        // SAFETY: On success `folio` is a memmap folio, returned locked and referenced.
        let folio = unsafe { FolioRef::from_raw(folio) }.ok_or(EFAULT)?;
        // SAFETY: We take over the lock and the reference of the folio.
        let folio = unsafe { LockedFolio::from_raw(folio) };
        let page = NonNull::new(page).ok_or(EFAULT)?;
        // INVARIANT: `page` is the page of that folio the address maps.
        Ok(Self {
            _folio: folio,
            page,
        })
    }

    /// The page the address maps, borrowed from `self`, which holds its folio.
    pub(crate) fn page(&self) -> PageRef<'_> {
        // SAFETY: By the type invariants the page is in the folio we hold referenced
        // for as long as `self` is borrowed.
        unsafe { PageRef::from_non_null(self.page) }
    }
}

/// `fixup_user_fault(mm, addr, FAULT_FLAG_WRITE, NULL)`: faults the page at
/// `addr` in writable as a CPU write would (a device-exclusive entry is
/// restored, a device page migrated back, COW broken), without dropping the
/// mmap lock of the mm, which `lock` holds for read.
pub(crate) fn fault_in_writable(lock: &MmapRead<'_>, addr: usize) -> Result {
    let mm = lock.mm();
    // SAFETY: `mm` has a user reference (its type) and its mmap lock is held for read
    // (`lock`'s invariant); with a NULL `unlocked` the function neither drops nor retakes it.
    to_result(unsafe {
        bindings::fixup_user_fault(
            mm.as_raw(),
            addr,
            bindings::FAULT_FLAG_WRITE,
            core::ptr::null_mut(),
        )
    })
}
