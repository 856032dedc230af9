// SPDX-License-Identifier: GPL-2.0

//! An xarray of tagged pointers to pages it does not own.
//!
//! C header: [`include/linux/xarray.h`](srctree/include/linux/xarray.h).
//!
//! `kernel::xarray::XArray<T: ForeignOwnable>` owns its entries and has no
//! tagged pointers (TODO[XATAG] in docs/todo.md); a device's page table, as
//! `lib/test_hmm.c` keeps it, maps an index to a page it holds no reference
//! to, with a 2-bit tag (`xa_tag_pointer()`). [`PageXArray::store`] is unsafe:
//! the caller promises that the page outlives its entry, which is what makes
//! the page [`PageXArray::load`] hands out, borrowed from the array, valid.

use crate::mm::folio::PageRef;
use kernel::{bindings, ffi::c_void, prelude::*, types::Opaque};

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

/// The tag of an entry: the low two bits of the pointer; 2 marks xarray
/// internal entries and is never a tag.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct PtrTag(u8);

impl PtrTag {
    /// Tag 0.
    pub(crate) const TAG0: Self = Self(0);
    /// Tag 1.
    pub(crate) const TAG1: Self = Self(1);
    /// Tag 3.
    pub(crate) const TAG3: Self = Self(3);

    /// Tag `bits` (0, 1 or 3), `None` for 2 or above 3.
    pub(crate) const fn new(bits: u8) -> Option<Self> {
        match bits {
            0 | 1 | 3 => Some(Self(bits)),
            _ => None,
        }
    }

    /// The bits.
    pub(crate) const fn bits(self) -> u8 {
        self.0
    }
}

/// An xarray of tagged page pointers, holding no page references.
///
/// # Invariants
///
/// `xa` is an initialised xarray, destroyed on drop; every entry is a
/// `struct page` pointer tagged with a [`PtrTag`], whose page stays a live
/// memmap page until the entry is erased (the contract of
/// [`PageXArray::store`]).
#[pin_data(PinnedDrop)]
pub(crate) struct PageXArray {
    #[pin]
    xa: Opaque<bindings::xarray>,
}

// SAFETY: The xarray is internally locked; its entries are memmap pointers usable on any thread.
unsafe impl Send for PageXArray {}
// SAFETY: All methods use the xarray's own locking.
unsafe impl Sync for PageXArray {}

impl PageXArray {
    /// An empty array (`xa_init`).
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `xa_init_flags` initialises the xarray in place.
            xa <- Opaque::ffi_init(|xa| unsafe { bindings::xa_init_flags(xa, 0) }),
        })
    }

    /// The page at `index` and its tag (`xa_load`), borrowed from the array.
    #[inline]
    pub(crate) fn load(&self, index: usize) -> Option<(PageRef<'_>, PtrTag)> {
        // SAFETY: By the type invariants `xa` is initialised; `xa_load` takes the RCU lock.
        let entry = unsafe { bindings::xa_load(self.xa.get(), index) } as usize;
        let tag = PtrTag::new((entry & 3) as u8)?;
        // SAFETY: By the type invariants a non-NULL entry is a tagged page pointer whose page
        // stays live until the entry is erased, and the contract of `store` keeps the erase
        // (and the page's release) from overlapping the use of a loaded page.
        let page = unsafe { PageRef::from_raw((entry & !3) as *mut bindings::page) }?;
        Some((page, tag))
    }

    /// Maps `index` to `page` with `tag` (`xa_store(..., GFP_ATOMIC)`).
    ///
    /// # Safety
    ///
    /// `page` must stay a live memmap page until this entry is erased, and
    /// the erase must not happen while a page [`PageXArray::load`] returned
    /// for it is in use: the owner of the array erases entries (and lets the
    /// page go) only with a lock held under which it also loads them.
    pub(crate) unsafe fn store(&self, index: usize, page: PageRef<'_>, tag: PtrTag) -> Result {
        let entry = (page.as_ptr() as usize | tag.bits() as usize) as *mut c_void;
        // SAFETY: By the type invariants `xa` is initialised; the entry is a tagged
        // pointer (never an internal entry since tags are 0, 1 or 3).
        // INVARIANT: The caller keeps the page live until the entry is erased.
        let old = unsafe { bindings::xa_store(self.xa.get(), index, entry, bindings::GFP_ATOMIC) };
        xa_err(old)
    }

    /// Unmaps `index` (`xa_erase`).
    pub(crate) fn erase(&self, index: usize) {
        // SAFETY: By the type invariants `xa` is initialised.
        unsafe { bindings::xa_erase(self.xa.get(), index) };
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
impl PinnedDrop for PageXArray {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariants `xa` is initialised; nobody uses it any more.
        unsafe { bindings::xa_destroy(self.xa.get()) };
    }
}

#[kernel::macros::kunit_tests(hmm_dmirror_rs_mm_xarray)]
mod tests {
    use super::*;
    use crate::mm::folio::NewPage;

    #[test]
    fn ptr_tags() {
        assert_eq!(PtrTag::new(0), Some(PtrTag::TAG0));
        assert_eq!(PtrTag::new(1), Some(PtrTag::TAG1));
        assert_eq!(PtrTag::new(2), None);
        assert_eq!(PtrTag::new(3), Some(PtrTag::TAG3));
        assert_eq!(PtrTag::new(4), None);
    }

    #[test]
    fn xa_err_decodes_errno() {
        assert!(xa_err(core::ptr::null_mut()).is_ok());
        // `xa_mk_internal(-ENOMEM)`, what `xa_store()` returns when it cannot allocate.
        let enomem = ((ENOMEM.to_errno() as isize as usize) << 2) | 2;
        assert_eq!(xa_err(enomem as *mut c_void), Err(ENOMEM));
        // A tagged page pointer is not an error.
        assert!(xa_err(0x1000_0003usize as *mut c_void).is_ok());
    }

    #[test]
    fn store_load_erase() {
        let page = NewPage::alloc_page(bindings::GFP_KERNEL);
        assert!(page.is_some());
        let Some(page) = page else { return };
        pin_init::stack_pin_init!(let xa = PageXArray::new());
        // SAFETY: `page` outlives the entry: it is erased below, before `page` drops.
        let stored = unsafe { xa.store(7, page.page(), PtrTag::TAG3) };
        assert!(stored.is_ok());
        let loaded = xa.load(7).map(|(p, t)| (p.pfn(), t));
        assert_eq!(loaded, Some((page.page().pfn(), PtrTag::TAG3)));
        assert!(xa.load(6).is_none());
        xa.erase_range(0, 10);
        assert!(xa.load(7).is_none());
    }
}
