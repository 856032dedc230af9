// SPDX-License-Identifier: GPL-2.0

//! MMU interval notifiers.
//!
//! Owns the registration of a `struct mmu_interval_notifier` together with the
//! data its `invalidate` callback works on: [`IntervalNotifier::insert`]
//! initialises the data first and registers the notifier last, and dropping the
//! pinned object removes the notifier (`mmu_interval_notifier_remove()` waits
//! for running callbacks) before the data goes away. The callback trampoline
//! takes the user lock that [`IntervalOps::lock`] names (trylock when the
//! range is not blockable), bumps the sequence under it and only then calls
//! [`IntervalOps::invalidate`] with the locked state.
//!
//! C header: [`include/linux/mmu_notifier.h`](srctree/include/linux/mmu_notifier.h).

use crate::mm::bindings;
use kernel::{error::to_result, ffi::c_void, mm::Mm, prelude::*, sync::Mutex, types::Opaque};

/// The callback of an [`IntervalNotifier`].
///
/// The notifier takes the user lock itself, the one [`IntervalOps::lock`]
/// names, and bumps the sequence under it before it calls
/// [`IntervalOps::invalidate`]: `mmu_interval_set_seq()` is not reachable
/// otherwise. (Formerly `Invalidation::set_seq()` was a safe method whose
/// "call with the user lock held" was documentation only.)
pub(crate) trait IntervalOps: Sized + Send + Sync {
    /// The data the user lock protects.
    type State;

    /// The user lock: `mmu_interval_read_retry()` of the notifier's readers is
    /// meaningful under it.
    fn lock(data: &Self) -> &Mutex<Self::State>;

    /// Whether to leave this invalidation alone: no lock, no sequence bump
    /// (an event the implementation caused itself and handles otherwise).
    fn skip(_data: &Self, _inv: &Invalidation<'_>) -> bool {
        false
    }

    /// Called for each other invalidation of an overlapping range, with the
    /// user lock held and the sequence already bumped.
    fn invalidate(data: &Self, state: &Self::State, inv: &Invalidation<'_>);
}

/// One invalidation, as passed to [`IntervalOps::invalidate`].
pub(crate) struct Invalidation<'a> {
    range: &'a bindings::mmu_notifier_range,
}

impl Invalidation<'_> {
    /// Start of the invalidated range.
    pub(crate) fn start(&self) -> usize {
        self.range.start
    }

    /// End (exclusive) of the invalidated range.
    pub(crate) fn end(&self) -> usize {
        self.range.end
    }

    /// Whether this is a migration started by the owner `owner`.
    pub(crate) fn is_migrate_by(&self, owner: *const c_void) -> bool {
        self.range.event == bindings::mmu_notifier_event_MMU_NOTIFY_MIGRATE
            && core::ptr::eq(self.range.owner, owner)
    }

    /// Whether this is a `make_device_exclusive()` conversion by the owner `owner`.
    pub(crate) fn is_exclusive_by(&self, owner: *const c_void) -> bool {
        self.range.event == bindings::mmu_notifier_event_MMU_NOTIFY_EXCLUSIVE
            && core::ptr::eq(self.range.owner, owner)
    }

    /// `mmu_notifier_range_blockable()`.
    pub(crate) fn blockable(&self) -> bool {
        // SAFETY: `range` is the valid range of this callback.
        unsafe { bindings::rust_mm_mmu_notifier_range_blockable(self.range) }
    }
}

/// A registered interval notifier and the data of its callback.
///
/// # Invariants
///
/// `mni` is inserted on `mm` with `Self::OPS` from the end of initialisation
/// until [`IntervalNotifier::remove`] or drop, whichever comes first, as
/// `removed` records; `data` is initialised before and outlives the registration.
#[pin_data(PinnedDrop)]
pub(crate) struct IntervalNotifier<T: IntervalOps> {
    #[pin]
    data: T,
    #[pin]
    mni: Opaque<bindings::mmu_interval_notifier>,
    removed: bool,
}

// SAFETY: `mni` is only used through the thread-safe mmu notifier API; `T` is `Send`.
unsafe impl<T: IntervalOps> Send for IntervalNotifier<T> {}
// SAFETY: As above; `T` is `Sync`.
unsafe impl<T: IntervalOps> Sync for IntervalNotifier<T> {}

impl<T: IntervalOps> IntervalNotifier<T> {
    const OPS: bindings::mmu_interval_notifier_ops = bindings::mmu_interval_notifier_ops {
        invalidate: Some(Self::invalidate_callback),
        ..pin_init::zeroed()
    };

    /// Initialises `data`, then registers a notifier for `[start, start + length)` of `mm`.
    pub(crate) fn insert(
        mm: &Mm,
        start: usize,
        length: usize,
        data: impl PinInit<T, Error>,
    ) -> impl PinInit<Self, Error> {
        let mm = mm.as_raw();
        try_pin_init!(Self {
            data <- data,
            mni <- Opaque::try_ffi_init(move |mni: *mut bindings::mmu_interval_notifier| {
                // SAFETY: `mni` is pinned memory that stays valid until `PinnedDrop`
                // removes the notifier; `mm` is a live mm (borrowed by the caller) that
                // the notifier grabs; the ops table is static.
                // INVARIANT: On success the notifier is inserted.
                to_result(unsafe {
                    bindings::mmu_interval_notifier_insert(mni, mm, start, length, &Self::OPS)
                })
            }),
            removed: false,
        })
    }

    /// The callback data.
    pub(crate) fn data(&self) -> &T {
        &self.data
    }

    /// The raw notifier, for `hmm_range::notifier`.
    pub(crate) fn as_raw(&self) -> *mut bindings::mmu_interval_notifier {
        self.mni.get()
    }

    /// `mmu_interval_read_begin()`: a sequence for [`IntervalNotifier::read_retry`]
    /// (waits for a running invalidation to end); `None` once removed.
    pub(crate) fn read_begin(&self) -> Option<kernel::ffi::c_ulong> {
        if self.removed {
            return None;
        }
        // SAFETY: By the type invariants the notifier is inserted until `remove`, which
        // needs `&mut self` and so cannot run while this borrow lasts.
        Some(unsafe { bindings::mmu_interval_read_begin(self.as_raw()) })
    }

    /// `mmu_interval_read_retry()`: whether an invalidation bumped the sequence since
    /// `read_begin` returned `seq`. Meaningful with the user lock held, under which
    /// the callback bumps it (see [`Invalidation::set_seq`]).
    pub(crate) fn read_retry(&self, seq: kernel::ffi::c_ulong) -> bool {
        // SAFETY: `mni` is pinned memory that lives as long as `self`; the helper only
        // reads its sequence.
        unsafe { bindings::rust_mm_mmu_interval_read_retry(self.as_raw(), seq) }
    }

    /// The mm the notifier watches, `None` once removed.
    pub(crate) fn mm(&self) -> Option<&Mm> {
        if self.removed {
            return None;
        }
        // SAFETY: By the type invariants the notifier is inserted, so `mm` is set and
        // grabbed (`mmgrab`) until removal, which needs `&mut self` (see `remove`) and so
        // cannot happen while this borrow lasts.
        Some(unsafe { Mm::from_raw((*self.mni.get()).mm) })
    }

    /// Removes the notifier now (`mmu_interval_notifier_remove()`, which waits
    /// for running callbacks); the data stays until drop. Idempotent.
    pub(crate) fn remove(self: Pin<&mut Self>) {
        // SAFETY: `removed` is not structurally pinned; nothing is moved out.
        let this = unsafe { self.get_unchecked_mut() };
        if this.removed {
            return;
        }
        // SAFETY: By the type invariants the notifier is inserted (not yet removed).
        unsafe { bindings::mmu_interval_notifier_remove(this.mni.get()) };
        // INVARIANT: Recorded as removed; drop will not remove it again.
        this.removed = true;
    }

    /// # Safety
    ///
    /// Called by the mmu notifier core for a notifier inserted by `insert`.
    unsafe extern "C" fn invalidate_callback(
        mni: *mut bindings::mmu_interval_notifier,
        range: *const bindings::mmu_notifier_range,
        cur_seq: kernel::ffi::c_ulong,
    ) -> bool {
        // SAFETY: `mni` is the `mni` field of an `IntervalNotifier<T>` (only `insert`
        // registers `Self::OPS`), which stays alive while the notifier is inserted.
        let this = unsafe { &*kernel::container_of!(Opaque::cast_from(mni), Self, mni) };
        // SAFETY: The core passes a valid range for the duration of the callback.
        let range = unsafe { &*range };
        let inv = Invalidation { range };
        let data = &this.data;
        if T::skip(data, &inv) {
            return true;
        }
        let lock = T::lock(data);
        let guard = if inv.blockable() {
            lock.lock()
        } else {
            match lock.try_lock() {
                Some(g) => g,
                None => return false,
            }
        };
        // SAFETY: `mni` is the notifier of the running callback and `cur_seq` its argument;
        // the user lock is held (`guard`).
        unsafe { bindings::rust_mm_mmu_interval_set_seq(mni, cur_seq) };
        T::invalidate(data, &guard, &inv);
        true
    }
}

#[pinned_drop]
impl<T: IntervalOps> PinnedDrop for IntervalNotifier<T> {
    fn drop(self: Pin<&mut Self>) {
        // Waits for running callbacks, after which `data` may be dropped.
        self.remove();
    }
}
