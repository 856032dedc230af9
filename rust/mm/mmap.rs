// SPDX-License-Identifier: GPL-2.0

//! The mmap read lock of an mm, together with the mm it locks.
//!
//! C header: [`include/linux/mmap_lock.h`](srctree/include/linux/mmap_lock.h).
//!
//! `kernel::mm::MmapReadGuard` does not say which mm it locks, so an API that
//! takes it as proof of "the mmap lock of *this* mm is held" cannot check
//! that. [`MmapRead`] carries the mm it locked: [`crate::mm::hmm::HmmRange::fault`]
//! compares it with the notifier's mm, and [`crate::mm::exclusive`] takes the
//! mm from it instead of from a separate argument. TODO[MMAPMM]
//! (docs/todo.md): with an upstream `MmapReadGuard::mm()` this type goes away.

use kernel::mm::{virt::VmaRef, MmWithUser, MmapReadGuard};

/// The mmap lock of `mm`, held for read.
///
/// # Invariants
///
/// `guard` is the read lock of `mm`, taken by [`MmapRead::lock`].
pub(crate) struct MmapRead<'a> {
    mm: &'a MmWithUser,
    guard: MmapReadGuard<'a>,
}

impl<'a> MmapRead<'a> {
    /// `mmap_read_lock(mm)`; unlocked on drop.
    pub(crate) fn lock(mm: &'a MmWithUser) -> Self {
        // INVARIANT: `guard` locks `mm`.
        Self {
            mm,
            guard: mm.mmap_read_lock(),
        }
    }

    /// The locked mm.
    pub(crate) fn mm(&self) -> &'a MmWithUser {
        self.mm
    }

    /// `vma_lookup()`: the VMA that contains `addr`, borrowed under the lock.
    pub(crate) fn vma_lookup(&self, addr: usize) -> Option<&VmaRef> {
        self.guard.vma_lookup(addr)
    }
}
