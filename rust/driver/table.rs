// SPDX-License-Identifier: GPL-2.0

//! The mirror table: the simulated device's page table.
//!
//! Owns the `struct xarray` that maps a user pfn to the page the "device"
//! reads and writes, with the access right in the pointer tag: 0 read-only,
//! [`Tag::Write`] writable, [`Tag::Atomic`] exclusive (as `DPT_XA_TAG_*` in
//! lib/test_hmm.c). The table does not hold page references: the pages stay
//! valid because the mirror's interval notifier erases every entry of a range
//! before the CPU page tables for it change. The table lives inside the
//! mirror's `Mutex<MirrorState>` (the notifier's user lock), so every load,
//! store and erase happens with that mutex held. The xarray's own spinlock
//! serialises the updates.

#![allow(unsafe_code)]

use crate::mm::folio::PageRef;
use kernel::{bindings, ffi::c_void, prelude::*, types::Opaque};

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

    /// `xa_tag_pointer(ptr, tag)`.
    pub(crate) fn tag_pointer(self, addr: usize) -> usize {
        addr | self as usize
    }

    /// `xa_untag_pointer()` and `xa_pointer_tag()` in one.
    pub(crate) const fn untag(entry: usize) -> (usize, usize) {
        (entry & !3, entry & 3)
    }
}

/// `MAX_ERRNO`.
const MAX_ERRNO: usize = 4095;

/// `xa_err()` of an `xa_store()` result.
fn xa_err(entry: *mut c_void) -> Result {
    let v = entry as usize;
    // `xa_is_err()`: an internal entry (tag 2) at or above `xa_mk_internal(-MAX_ERRNO)`.
    if v & 3 == 2 && v >= ((0usize.wrapping_sub(MAX_ERRNO)) << 2) | 2 {
        Err(Error::from_errno(((v as isize) >> 2) as i32))
    } else {
        Ok(())
    }
}

/// The per-open mirror table.
///
/// # Invariants
///
/// `xa` is an initialised xarray whose entries are tagged `struct page`
/// pointers ([`Tag`]); it is destroyed on drop.
#[pin_data(PinnedDrop)]
pub(crate) struct MirrorTable {
    #[pin]
    xa: Opaque<bindings::xarray>,
}

// SAFETY: The xarray is internally locked; its entries are memmap pointers usable on any thread.
unsafe impl Send for MirrorTable {}
// SAFETY: All methods use the xarray's own locking.
unsafe impl Sync for MirrorTable {}

impl MirrorTable {
    /// An empty table (`xa_init`).
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `xa_init_flags` initialises the xarray in place.
            xa <- Opaque::ffi_init(|xa| unsafe { bindings::xa_init_flags(xa, 0) }),
        })
    }

    /// The page at `pfn` and its tag (`xa_load`).
    pub(crate) fn load(&self, pfn: usize) -> Option<(PageRef<'_>, Tag)> {
        // SAFETY: By the type invariants `xa` is initialised; `xa_load` takes the RCU lock.
        let entry = unsafe { bindings::xa_load(self.xa.get(), pfn) } as usize;
        let (addr, bits) = Tag::untag(entry);
        // SAFETY: TODO[XATAG]. Non-NULL entries are page pointers stored by `store`, which
        // stay memmap pages until erased (its safety contract), and `self` is borrowed from
        // the mirror mutex under which they are erased.
        let page = unsafe { PageRef::from_raw(addr as *mut bindings::page) }?;
        Some((page, Tag::from_bits(bits)?))
    }

    /// The tag at `pfn`, or `None` for an empty slot.
    pub(crate) fn tag(&self, pfn: usize) -> Option<Tag> {
        self.load(pfn).map(|(_, t)| t)
    }

    /// Maps `pfn` to `page` with `tag` (`xa_store(..., GFP_ATOMIC)`).
    ///
    /// # Safety
    ///
    /// `page` must stay a memmap page until its entry is erased: the caller
    /// holds the mirror mutex with the notifier sequence (or the migration
    /// that holds the page) checked, so that an invalidation that could let
    /// the page go erases the entry first, under that mutex. ([`load`] hands
    /// the page out borrowed from the table, that is, from the mutex guard.)
    ///
    /// [`load`]: MirrorTable::load
    pub(crate) unsafe fn store(&self, pfn: usize, page: PageRef<'_>, tag: Tag) -> Result {
        let entry = tag.tag_pointer(page.as_ptr() as usize) as *mut c_void;
        // SAFETY: By the type invariants `xa` is initialised; the entry is a tagged
        // pointer (never an internal entry since tags are 0, 1 or 3).
        let old = unsafe { bindings::xa_store(self.xa.get(), pfn, entry, bindings::GFP_ATOMIC) };
        xa_err(old)
    }

    /// Unmaps `pfn` (`xa_erase`).
    pub(crate) fn erase(&self, pfn: usize) {
        // SAFETY: By the type invariants `xa` is initialised.
        unsafe { bindings::xa_erase(self.xa.get(), pfn) };
    }

    /// Unmaps every entry in `[first, last]` (`xa_for_each_range` + `xa_erase`).
    pub(crate) fn erase_range(&self, first: usize, last: usize) {
        let mut index = first;
        loop {
            // SAFETY: By the type invariants `xa` is initialised; `index` is a valid pointer.
            let entry =
                unsafe { bindings::xa_find(self.xa.get(), &mut index, last, bindings::XA_PRESENT) };
            if entry.is_null() {
                break;
            }
            self.erase(index);
            if index >= last {
                break;
            }
            index += 1;
        }
    }
}

#[pinned_drop]
impl PinnedDrop for MirrorTable {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariants `xa` is initialised; nobody uses it any more.
        unsafe { bindings::xa_destroy(self.xa.get()) };
    }
}
