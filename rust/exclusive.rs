// SPDX-License-Identifier: GPL-2.0

//! Device-exclusive access to user pages.
//!
//! Owns [`ExclusivePage`]: what `make_device_exclusive()` hands back, a
//! locked and referenced folio plus the page that the address maps. The CPU
//! mapping of the page is a device-exclusive entry from then on, until the
//! next CPU access or an invalidation; the folio is unlocked and released when
//! the [`ExclusivePage`] is dropped.

use crate::{
    bindings,
    page::{FolioRef, LockedFolio, PageRef},
};
use kernel::{
    error::from_err_ptr,
    mm::{MmWithUser, MmapReadGuard},
    prelude::*,
};

/// A page made device-exclusive, with its folio held locked.
pub(crate) struct ExclusivePage {
    _folio: LockedFolio,
    page: PageRef,
}

impl ExclusivePage {
    /// `make_device_exclusive(mm, addr, NULL, &folio)`: `mmap_lock` must be
    /// `mm`'s mmap lock held for read (as the C function requires).
    pub(crate) fn make(
        mm: &MmWithUser,
        _mmap_lock: &MmapReadGuard<'_>,
        addr: usize,
    ) -> Result<Self> {
        let mut folio: *mut bindings::folio = core::ptr::null_mut();
        // SAFETY: `mm` has a user reference (its type) and its mmap lock is held for read
        // (`_mmap_lock`); `folio` is valid for the one write the function makes. The owner
        // cookie is NULL, as in the C driver.
        let page = unsafe {
            bindings::make_device_exclusive(mm.as_raw(), addr, core::ptr::null_mut(), &mut folio)
        };
        let page = from_err_ptr(page)?;
        // SAFETY: On success `folio` is a memmap folio, returned locked and referenced.
        let folio = unsafe { FolioRef::from_raw(folio) }.ok_or(EFAULT)?;
        // SAFETY: We take over the lock and the reference of the folio.
        let folio = unsafe { LockedFolio::from_raw(folio) };
        // SAFETY: `page` is a page of that folio, alive while we hold it.
        let page = unsafe { PageRef::from_raw(page) }.ok_or(EFAULT)?;
        Ok(Self {
            _folio: folio,
            page,
        })
    }

    /// The page the address maps.
    pub(crate) fn page(&self) -> PageRef {
        self.page
    }
}
