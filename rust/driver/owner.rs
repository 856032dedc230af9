// SPDX-License-Identifier: GPL-2.0

//! The owner reference of an allocated device page.
//!
//! Owns the pointer that a device page keeps to the object that migrated it
//! (lib/test_hmm.c: `rpage->zone_device_data = dmirror`), stored in the
//! `zone_device_data` of its *owner slot*: the backing page for device-private
//! memory (the head of the backing folio for a large folio), the page itself
//! for coherent memory. Each non-NULL slot holds one counted reference
//! (`Arc<T>` through [`ForeignOwnable`]), taken by [`set`] and [`dup`] and
//! dropped when the page is freed ([`take`]), so the owner outlives every
//! page that points to it, also after its file was closed and the eviction
//! on close (which only trylocks pages) left a page behind.
//!
//! Generic over the owner type, so that this module depends on nothing in
//! the driver. TODO[PGDATA]: typed per-page data of a `DevPagemap<T>` would
//! replace this module (docs/todo.md); the slot is a system page for private
//! memory, which no generic abstraction should know about, hence the raw
//! accesses here.

#![allow(unsafe_code)]

use crate::mm::folio::PageRef;
use kernel::{ffi::c_void, sync::Arc, types::ForeignOwnable};

/// Makes the owner slot `slot` point to `owner`, with a new reference, and
/// drops the reference of the owner it pointed to before, if any.
///
/// # Safety
///
/// TODO[PGDATA] (docs/todo.md).
///
/// `slot` is the owner slot of an allocated device page of this driver that the
/// caller holds locked (or has just allocated), and its `zone_device_data` is
/// NULL or was set by this module's functions with the same `T`.
pub(crate) unsafe fn set<T: Send + Sync + 'static>(slot: PageRef<'_>, owner: &Arc<T>) {
    // SAFETY: TODO[PGDATA]. The caller's guarantees are those of `take`.
    drop(unsafe { take::<T>(slot) });
    let ptr = owner.clone().into_foreign();
    // SAFETY: TODO[PGDATA]. The caller owns the slot; the stored pointer holds the new
    // reference.
    unsafe { slot.set_zone_device_data(ptr) };
}

/// The owner the slot `slot` points to, with a new reference.
///
/// # Safety
///
/// TODO[PGDATA] (docs/todo.md).
///
/// As for [`set`]; the slot must not be changed concurrently (the page is
/// locked or referenced by the caller, and only allocation, split and free
/// change the slot).
pub(crate) unsafe fn get<T: Send + Sync + 'static>(slot: PageRef<'_>) -> Option<Arc<T>> {
    let ptr = slot.zone_device_data();
    if ptr.is_null() {
        return None;
    }
    // SAFETY: TODO[PGDATA]. A non-NULL slot comes from `into_foreign` in `set` or `dup`
    // and holds a reference, which stays while the caller keeps the page from being freed.
    let borrow = unsafe { <Arc<T> as ForeignOwnable>::borrow(ptr) };
    Some(borrow.into())
}

/// Clears the owner slot `slot` and returns the reference it held, if any
/// (for the page's free path, before the field is reused).
///
/// # Safety
///
/// TODO[PGDATA] (docs/todo.md).
///
/// As for [`set`], or the page is being freed (nobody else uses it).
pub(crate) unsafe fn take<T: Send + Sync + 'static>(slot: PageRef<'_>) -> Option<Arc<T>> {
    let ptr = slot.zone_device_data();
    if ptr.is_null() {
        return None;
    }
    // SAFETY: TODO[PGDATA]. The caller owns the slot.
    unsafe { slot.set_zone_device_data(core::ptr::null_mut()) };
    // SAFETY: TODO[PGDATA]. A non-NULL slot holds a reference from `into_foreign`, which
    // we take over after clearing the slot.
    Some(unsafe { <Arc<T> as ForeignOwnable>::from_foreign(ptr) })
}

/// Takes a new reference for a copy of the owner pointer `ptr` (of a slot
/// being split, see `callbacks`), to be stored in another slot.
///
/// # Safety
///
/// TODO[PGDATA] (docs/todo.md).
///
/// `ptr` is NULL or the pointer of a slot (set with the same `T`) that holds
/// its reference for the duration of the call.
pub(crate) unsafe fn dup<T: Send + Sync + 'static>(ptr: *mut c_void) {
    if ptr.is_null() {
        return;
    }
    // SAFETY: TODO[PGDATA]. The caller guarantees the slot's reference lives during the
    // call.
    let borrow = unsafe { <Arc<T> as ForeignOwnable>::borrow(ptr) };
    // The new reference now belongs to the copy of the pointer.
    let _ = Arc::<T>::from(borrow).into_foreign();
}
