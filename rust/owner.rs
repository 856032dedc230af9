// SPDX-License-Identifier: GPL-2.0

//! The owner reference of an allocated device page.
//!
//! Owns the pointer that a device page keeps to the mirror that migrated it
//! (lib/test_hmm.c: `rpage->zone_device_data = dmirror`), stored in the
//! `zone_device_data` of its *owner slot*: the backing page for device-private
//! memory (the head of the backing folio for a large folio), the page itself
//! for coherent memory. Unlike the C driver's pointer, each non-NULL slot holds
//! one reference to the mirror ([`set`], [`dup`]) that is dropped when the page
//! is freed ([`take`]). The mirror therefore outlives every page that points to
//! it, also after its file was closed: the eviction on close only trylocks the
//! pages (`migrate_device_range()`), so a page that another task holds locked
//! at that moment, for a CPU fault or a migration that then fails, stays on the
//! device, and its next CPU fault must not use a freed mirror (with a raw
//! pointer, `devmem_fault` would read freed memory).

use crate::{mirror::Mirror, page::PageRef};
use kernel::{
    ffi::c_void,
    sync::{Arc, ArcBorrow},
};

/// Makes the owner slot `slot` point to `mirror`, with a new reference, and
/// drops the reference of the mirror it pointed to before, if any.
///
/// # Safety
///
/// `slot` is the owner slot of an allocated device page of this driver that the
/// caller holds locked (or has just allocated), and its `zone_device_data` is
/// NULL or was set by this module's functions.
pub(crate) unsafe fn set(slot: PageRef, mirror: &Arc<Mirror>) {
    // SAFETY: The caller's guarantees are those of `take`.
    drop(unsafe { take(slot) });
    let ptr = Arc::into_raw(mirror.clone()).cast_mut().cast::<c_void>();
    // SAFETY: The caller owns the slot; the stored pointer holds the new reference.
    unsafe { slot.set_zone_device_data(ptr) };
}

/// The mirror the owner slot `slot` points to, with a new reference.
///
/// # Safety
///
/// As for [`set`]; the slot must not be changed concurrently (the page is
/// locked or referenced by the caller, and only allocation, split and free
/// change the slot).
pub(crate) unsafe fn get(slot: PageRef) -> Option<Arc<Mirror>> {
    let ptr = slot.zone_device_data().cast::<Mirror>().cast_const();
    if ptr.is_null() {
        return None;
    }
    // SAFETY: A non-NULL slot comes from `Arc::into_raw` in `set` or `dup` and holds a
    // reference, which stays while the caller keeps the page from being freed.
    let borrow = unsafe { ArcBorrow::from_raw(ptr) };
    Some(borrow.into())
}

/// Clears the owner slot `slot` and returns the reference it held, if any
/// (for the page's free path, before the field is reused).
///
/// # Safety
///
/// As for [`set`], or the page is being freed (nobody else uses it).
pub(crate) unsafe fn take(slot: PageRef) -> Option<Arc<Mirror>> {
    let ptr = slot.zone_device_data().cast::<Mirror>().cast_const();
    if ptr.is_null() {
        return None;
    }
    // SAFETY: The caller owns the slot.
    unsafe { slot.set_zone_device_data(core::ptr::null_mut()) };
    // SAFETY: A non-NULL slot holds a reference from `Arc::into_raw`, which we take over
    // after clearing the slot.
    Some(unsafe { Arc::from_raw(ptr) })
}

/// Takes a new reference for a copy of the owner pointer `ptr` (of a slot
/// being split, see `ChunkData::folio_split`), to be stored in another slot.
///
/// # Safety
///
/// `ptr` is NULL or the pointer of a slot that holds its reference for the
/// duration of the call.
pub(crate) unsafe fn dup(ptr: *mut c_void) {
    let ptr = ptr.cast::<Mirror>().cast_const();
    if ptr.is_null() {
        return;
    }
    // SAFETY: The caller guarantees the slot's reference lives during the call.
    let borrow = unsafe { ArcBorrow::from_raw(ptr) };
    // The new reference now belongs to the copy of the pointer.
    let _ = Arc::into_raw(Arc::from(borrow));
}
