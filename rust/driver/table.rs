// SPDX-License-Identifier: GPL-2.0

//! The mirror table: the simulated device's page table.
//!
//! Owns the map from a user pfn to the page the "device" reads and writes,
//! with the access right in the pointer tag: 0 read-only, [`Tag::Write`]
//! writable, [`Tag::Atomic`] exclusive (as `DPT_XA_TAG_*` in lib/test_hmm.c),
//! on a [`PageXArray`]. The table does not hold page references: the pages
//! stay valid because the mirror's interval notifier erases every entry of a
//! range before the CPU page tables for it change. The table lives inside the
//! mirror's `Mutex<MirrorState>` (the notifier's user lock), so every load,
//! store and erase happens with that mutex held.

use crate::mm::{
    folio::PageRef,
    xarray::{PageXArray, PtrTag},
};
use kernel::prelude::*;

/// Access right of a table entry, stored in the low pointer bits.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Tag {
    /// Read-only mapping.
    Read = 0,
    /// Exclusive (atomic) access granted by `make_device_exclusive()`.
    Atomic = 1,
    /// Writable mapping.
    Write = 3,
}

impl Tag {
    /// Decodes the two tag bits; 2 (an xarray internal entry) never occurs.
    pub(crate) const fn from_bits(bits: usize) -> Option<Self> {
        match bits {
            0 => Some(Tag::Read),
            1 => Some(Tag::Atomic),
            3 => Some(Tag::Write),
            _ => None,
        }
    }

    /// The pointer tag.
    const fn ptr_tag(self) -> PtrTag {
        match self {
            Tag::Read => PtrTag::TAG0,
            Tag::Atomic => PtrTag::TAG1,
            Tag::Write => PtrTag::TAG3,
        }
    }
}

/// The per-open mirror table.
#[pin_data]
pub(crate) struct MirrorTable {
    #[pin]
    xa: PageXArray,
}

impl MirrorTable {
    /// An empty table (`xa_init`).
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            xa <- PageXArray::new(),
        })
    }

    /// The page at `pfn` and its tag (`xa_load`), borrowed from the table.
    pub(crate) fn load(&self, pfn: usize) -> Option<(PageRef<'_>, Tag)> {
        let (page, tag) = self.xa.load(pfn)?;
        Some((page, Tag::from_bits(tag.bits() as usize)?))
    }

    /// The tag at `pfn`, or `None` for an empty slot.
    pub(crate) fn tag(&self, pfn: usize) -> Option<Tag> {
        self.load(pfn).map(|(_, t)| t)
    }

    /// Maps `pfn` to `page` with `tag` (`xa_store(..., GFP_ATOMIC)`).
    ///
    /// # Safety
    ///
    /// As [`PageXArray::store`]: `page` must stay a memmap page until its
    /// entry is erased; the caller holds the mirror mutex with the notifier
    /// sequence (or the migration that holds the page) checked, so that an
    /// invalidation that could let the page go erases the entry first, under
    /// that mutex, under which the pages [`MirrorTable::load`] returns are used.
    /// TODO[XATAG] (docs/todo.md).
    #[allow(unsafe_code)]
    pub(crate) unsafe fn store(&self, pfn: usize, page: PageRef<'_>, tag: Tag) -> Result {
        // SAFETY: TODO[XATAG]. The caller's guarantees are those of `PageXArray::store`.
        unsafe { self.xa.store(pfn, page, tag.ptr_tag()) }
    }

    /// Unmaps `pfn` (`xa_erase`).
    pub(crate) fn erase(&self, pfn: usize) {
        self.xa.erase(pfn);
    }

    /// Unmaps every entry in `[first, last]`.
    pub(crate) fn erase_range(&self, first: usize, last: usize) {
        self.xa.erase_range(first, last);
    }
}
