// SPDX-License-Identifier: GPL-2.0

//! The per-open mirror of a process address space and the ioctl operations.
//!
//! Owns [`Mirror`] (device, the mutex with the data it guards,
//! [`MirrorState`], which is also the interval notifier's user lock, the
//! FLAGS word, the marks of the tasks migrating through it and the count of
//! their erases) and [`DmirrorFile`], the open file: the mirror embedded in its interval notifier
//! over the whole mm, and the fault and mapping of device pages that several operations share.
//! Each operation lives in a submodule: [`migrate`] (both migrations and the `migrate_to_ram`
//! entry, which recovers the mirror from a backing page), [`rw`], [`atomic`], [`snapshot`] and
//! [`hooks`]. The `unsafe` left here is tagged: the device pointer (`TODO[DEVREF]`) and the
//! table stores (`TODO[XATAG]`). Lock order: mmap_lock (read), then the mirror mutex.

#![allow(unsafe_code)]

mod atomic;
mod hooks;
mod migrate;
mod rw;
mod snapshot;

use crate::{
    driver::{
        devmem::{self, DmirrorDevice, HPAGE_PMD_NR},
        owner,
        table::{MirrorTable, Tag},
        uapi::{self, HmmDmirrorCmd, MemoryType, PageKind},
    },
    mm::{
        bindings,
        exclusive::{self, ExclusivePage},
        folio::{LockedPage, NewPage, PageRef, Pages, ZeroPfns},
        hmm::{self, HmmPfn, HmmRange, Validated},
        memremap::DeviceFault,
        migrate::{
            Collected, DstSlots, MigratePage, Migrated, PfnArrays, Src, SrcEntries, VmaMigrateArgs,
        },
        mmap::MmapRead,
        mmu_notifier::{IntervalNotifier, IntervalOps, Invalidation},
    },
};
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use kernel::{
    ffi::c_void,
    mm::{virt::VmaRef, Mm, MmWithUser},
    new_mutex,
    page::{PAGE_MASK, PAGE_SHIFT, PAGE_SIZE},
    pr_warn_once,
    prelude::*,
    sync::{aref::ARef, Arc, Mutex},
    task::Task,
    time::{delay::fsleep, Delta, Instant, Monotonic},
    uaccess::{UserPtr, UserSlice},
};

/// `PTRS_PER_PTE`: pages per migration window.
const PTRS_PER_PTE: usize = bindings::PTRS_PER_PTE;
/// `HMM_RANGE_DEFAULT_TIMEOUT` in ms.
const RANGE_TIMEOUT_MS: i64 = bindings::HMM_RANGE_DEFAULT_TIMEOUT as i64;

/// The state of one open file.
#[pin_data]
pub(crate) struct Mirror {
    device: *const DmirrorDevice,
    /// The mirror mutex and the data it protects; also the user lock of the
    /// mirror's interval notifier ([`IntervalOps::lock`]).
    #[pin]
    state: Mutex<MirrorState>,
    flags: AtomicU64,
    /// The tasks inside a migration of this very mirror (null: a free slot):
    /// only their own-device `MMU_NOTIFY_MIGRATE` invalidations leave the table
    /// alone (see the interval notifier's `invalidate`).
    migrating: [AtomicPtr<bindings::task_struct>; MIGRATING_SLOTS],
    /// Bumped under the mutex whenever a migration of this mirror erases the
    /// entries of the pages it moves: the invalidations of those migrations do
    /// not bump the notifier sequence, so a walk that stores into the table
    /// checks this as well (see [`Mirror::validated`]).
    moved: AtomicU64,
    /// Pages locked by the PROJECT-ONLY `TEST_LOCK_PAGES` hook.
    #[pin]
    test_locked: Mutex<KVec<LockedPage>>,
    /// PROJECT-ONLY `TEST_EXCLUSIVE_DELAY` hook: milliseconds EXCLUSIVE sleeps
    /// between `make_device_exclusive()` and its table store (0: none).
    test_exclusive_delay_ms: AtomicU64,
    /// EXCLUSIVE conversions of this mirror retried because an invalidation
    /// came in between (read by the same hook).
    exclusive_retries: AtomicU64,
}

/// The data of a mirror that lives under its mutex.
///
/// # Invariants
///
/// Reachable only through the mirror's `Mutex<MirrorState>`: the table (whose
/// entries do not hold page references) is read and changed only with the
/// mutex held, under which the interval notifier erases entries before their
/// pages can go. (Formerly the table sat beside a `Mutex<()>`, and
/// `MirrorTable::load` could be called without it.)
#[pin_data]
pub(crate) struct MirrorState {
    #[pin]
    table: MirrorTable,
}

impl MirrorState {
    fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            table <- MirrorTable::new(),
        })
    }
}

// SAFETY: TODO[DEVREF]. `device` points to a device that outlives every mirror: an open file keeps
// the module loaded, and a mirror that outlives its file is only referenced by device pages
// (`owner`), which the device frees (evicts, then waits for) before it is dropped; everything else
// is thread-safe.
unsafe impl Send for Mirror {}
// SAFETY: TODO[DEVREF]. As above.
unsafe impl Sync for Mirror {}

/// How many tasks can migrate through one mirror at the same time and have
/// their own invalidations leave its table alone; more are safe, see
/// [`Mirror::migrating`].
const MIGRATING_SLOTS: usize = 8;

/// The current task migrating through a mirror (see `Mirror::migrating`).
struct MigratingGuard<'a> {
    slot: Option<&'a AtomicPtr<bindings::task_struct>>,
}

impl Drop for MigratingGuard<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            slot.store(core::ptr::null_mut(), Ordering::Release);
        }
    }
}

/// Clips `[start, end)` of a command; `None` if it wraps.
fn cmd_range(cmd: &HmmDmirrorCmd) -> Result<(usize, usize)> {
    let start = cmd.addr as usize;
    let size = (cmd.npages as usize) << PAGE_SHIFT;
    let end = start.wrapping_add(size);
    if end < start {
        return Err(EINVAL);
    }
    Ok((start, end))
}

impl Mirror {
    fn new(device: &DmirrorDevice) -> impl PinInit<Self, Error> + '_ {
        try_pin_init!(Self {
            device,
            state <- new_mutex!(MirrorState::new()),
            flags: AtomicU64::new(0),
            migrating: [const { AtomicPtr::new(core::ptr::null_mut()) }; MIGRATING_SLOTS],
            moved: AtomicU64::new(0),
            test_locked <- new_mutex!(KVec::new()),
            test_exclusive_delay_ms: AtomicU64::new(0),
            exclusive_retries: AtomicU64::new(0),
        })
    }

    /// Marks the current task as migrating through this mirror until the guard
    /// drops. A task that finds every slot taken is not marked: its migrations
    /// erase this table's entries like any other invalidation (safe; a read-back
    /// may then miss pages, `ENOENT`).
    fn migrating(&self) -> MigratingGuard<'_> {
        let me = Task::current_raw();
        let slot = self.migrating.iter().find(|slot| {
            slot.compare_exchange(
                core::ptr::null_mut(),
                me,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        });
        MigratingGuard { slot }
    }

    /// Whether the current task is marked as migrating through this mirror.
    fn is_migrating(&self) -> bool {
        let me = Task::current_raw();
        self.migrating
            .iter()
            .any(|slot| core::ptr::eq(slot.load(Ordering::Acquire), me))
    }

    /// Records, under the mutex, that a migration of this mirror erased the
    /// entries of pages it moves (see `moved`).
    fn note_moved(&self, _g: &MirrorState) {
        self.moved.fetch_add(1, Ordering::Release);
    }

    /// Whether no migration of this mirror erased entries since `moved` was
    /// read (before a walk): the walk's pages can go into the table. A page it
    /// saw that such a migration moved is freed after that erase, which the
    /// walk would otherwise not notice (the migration's own invalidation
    /// leaves the sequence alone). A walk that began after the erase cannot
    /// have seen the page: the migration entries were in place before it.
    fn validated(&self, _g: &MirrorState, moved: u64) -> bool {
        self.moved.load(Ordering::Relaxed) == moved
    }

    /// The device this file was opened on.
    pub(crate) fn device(&self) -> &DmirrorDevice {
        // SAFETY: TODO[DEVREF]. See the `Send` impl: the device outlives the mirror.
        unsafe { &*self.device }
    }

    fn owner(&self) -> *const c_void {
        self.device().owner()
    }

    /// `HMM_DMIRROR_FLAGS`.
    pub(crate) fn set_flags(&self, flags: u64) {
        self.flags.store(flags, Ordering::Relaxed);
    }

    /// Consumes the one-shot `FAIL_ALLOC` flag.
    fn take_fail_alloc(&self) -> bool {
        if self.flags.load(Ordering::Relaxed) & uapi::FLAG_FAIL_ALLOC == 0 {
            return false;
        }
        self.flags
            .fetch_and(!uapi::FLAG_FAIL_ALLOC, Ordering::Relaxed)
            & uapi::FLAG_FAIL_ALLOC
            != 0
    }

    fn select_device(&self) -> u32 {
        match self.device().mtype() {
            MemoryType::Private => {
                bindings::migrate_vma_direction_MIGRATE_VMA_SELECT_DEVICE_PRIVATE
            }
            MemoryType::Coherent => {
                bindings::migrate_vma_direction_MIGRATE_VMA_SELECT_DEVICE_COHERENT
            }
        }
    }

    /// `dmirror_do_fault()`: stores the faulted pages in the table.
    fn do_fault(&self, g: &Validated<'_, MirrorState>, range: &HmmRange<'_>) -> Result {
        let first = range.start() >> PAGE_SHIFT;
        for (i, p) in range.pfns(g)?.enumerate() {
            if p.is_error() || !p.is_valid() {
                pr_warn_once!("hmm_range_fault returned an invalid entry\n");
            }
            let Some(page) = p.page_at((first + i) << PAGE_SHIFT) else {
                g.table.erase(first + i);
                continue;
            };
            // hmm_range_fault() does not fault our own device-private pages back (we are
            // their `dev_private_owner`): mirror their backing page, which holds the data
            // and is in the kernel's direct map. The C driver stores the device page itself
            // and then Oopses copying from it (see selftests/expectations.txt).
            let page = if page.is_device_private() {
                devmem::backing_page(page).ok_or(EFAULT)?
            } else {
                page
            };
            let tag = if p.is_write() {
                Tag::Write
            } else if range.default_flags() & hmm::REQ_WRITE != 0 {
                pr_warn_once!("write fault returned a read-only entry\n");
                return Err(EFAULT);
            } else {
                Tag::Read
            };
            // SAFETY: TODO[XATAG]. The walk was validated under the mutex (`g`): the page stays
            // mapped until an invalidation, which erases the entry under the mutex first.
            unsafe { g.table.store(first + i, page, tag) }?;
        }
        Ok(())
    }

    /// The backing page of a device page the mirror maps, for the table.
    fn map_entry(page: PageRef<'_>) -> Option<PageRef<'_>> {
        devmem::backing_page(page)
    }

    /// Stores this device's pages that a validated `hmm_range_fault()` without
    /// faults reports, and leaves every other entry of the window alone.
    fn store_own_pages(&self, g: &Validated<'_, MirrorState>, range: &HmmRange<'_>) -> Result {
        let first = range.start() >> PAGE_SHIFT;
        for (i, p) in range.pfns(g)?.enumerate() {
            let Some(page) = p.page_at((first + i) << PAGE_SHIFT) else {
                continue;
            };
            if !self.device().owns_page(page) {
                continue;
            }
            let Some(rpage) = Self::map_entry(page) else {
                continue;
            };
            let tag = if p.is_write() { Tag::Write } else { Tag::Read };
            // SAFETY: TODO[XATAG]. As in `do_fault`: validated under the mutex.
            unsafe { g.table.store(first + i, rpage, tag) }?;
        }
        Ok(())
    }
}

/// The open file's reference to its mirror: the data of its interval notifier.
#[pin_data]
struct MirrorRef {
    mirror: Arc<Mirror>,
}

impl MirrorRef {
    fn new(device: &DmirrorDevice) -> impl PinInit<Self, Error> + '_ {
        try_pin_init!(Self {
            mirror: Arc::pin_init(Mirror::new(device), GFP_KERNEL)?,
        })
    }
}

impl IntervalOps for MirrorRef {
    type State = MirrorState;

    fn lock(data: &Self) -> &Mutex<MirrorState> {
        &data.mirror.state
    }

    fn skip(data: &Self, inv: &Invalidation<'_>) -> bool {
        data.mirror.skips(inv)
    }

    fn invalidate(_data: &Self, state: &MirrorState, inv: &Invalidation<'_>) {
        state
            .table
            .erase_range(inv.start() >> PAGE_SHIFT, inv.end() >> PAGE_SHIFT);
    }
}

impl Mirror {
    /// Whether the mirror's notifier leaves an invalidation alone (no lock, no
    /// sequence bump, no erase); every other one erases the range's entries
    /// under the mutex with the sequence bumped ([`IntervalOps`]).
    ///
    /// The table holds no page references: an entry must be gone, under the
    /// mutex and with the sequence bumped, before its page can be freed.
    /// Migrations of this mirror are the exception, as in the C driver: their
    /// entries stay (a device page a migration to the device leaves alone stays
    /// mirrored), and the migration itself drops the entries of the pages it
    /// moves under the mutex (`devmem_alloc_and_copy`, `erase_moved_and_map`)
    /// and counts it in `moved`, which every walk that stores into the table
    /// checks besides the sequence. Only the mirror that migrates skips: another
    /// descriptor of the same device in the same mm sees the same `owner` in the
    /// event, but nothing would drop its entries for it.
    fn skips(&self, inv: &Invalidation<'_>) -> bool {
        if inv.is_migrate_by(self.owner()) && self.is_migrating() {
            return true;
        }
        // The conversion of a page by this mirror's EXCLUSIVE, which must not invalidate
        // itself (`exclusive_page`). The page stays mapped (by the device-exclusive entry),
        // so an entry of the table for it stays valid.
        inv.is_exclusive_by(self.exclusive_owner())
    }
}

/// An open `/dev/hmm_dmirrorN`: a reference to the mirror inside the interval
/// notifier. The mirror itself lives as long as its last device page (see
/// [`owner`]).
#[pin_data]
pub(crate) struct DmirrorFile {
    #[pin]
    notifier: IntervalNotifier<MirrorRef>,
}

impl DmirrorFile {
    /// `dmirror_fops_open()`: mirrors the current process's whole address space.
    pub(crate) fn new<'a>(device: &'a DmirrorDevice, mm: &'a Mm) -> impl PinInit<Self, Error> + 'a {
        try_pin_init!(Self {
            notifier <- IntervalNotifier::insert(mm, 0, usize::MAX & PAGE_MASK, MirrorRef::new(device)),
        })
    }

    /// `dmirror_fops_release()` before the file's memory is freed: releases
    /// the pages locked by the test hook, removes the interval notifier, then
    /// evicts every chunk of the device back to system memory. A page the
    /// eviction leaves behind keeps the mirror alive (see [`owner`]).
    pub(crate) fn release(mut self: Pin<&mut Self>) {
        drop(core::mem::take(&mut *self.mirror().test_locked.lock()));
        self.as_mut().project().notifier.remove();
        self.mirror().device().evict_all();
    }

    /// The mirror.
    pub(crate) fn mirror(&self) -> &Mirror {
        &self.notifier.data().mirror
    }

    /// The file's reference to the mirror, for new device pages.
    fn mirror_ref(&self) -> &Arc<Mirror> {
        &self.notifier.data().mirror
    }

    /// The mirrored mm with a user reference (`mmget_not_zero`).
    fn mmget(&self) -> Option<ARef<MmWithUser>> {
        self.notifier.mm()?.mmget_not_zero()
    }

    fn deadline_passed(start: &Instant<Monotonic>) -> bool {
        start.elapsed() > Delta::from_millis(RANGE_TIMEOUT_MS)
    }

    /// The retry loop of every `hmm_range_fault()` caller: `fault` runs
    /// `hmm_range_fault()` on `range`'s window (with the mmap read lock) until it
    /// succeeds with a notifier sequence that is still valid under the mirror
    /// mutex, which is returned held. `EBUSY` from the walk (an invalidation in
    /// progress) and a stale sequence retry; `EBUSY` after `RANGE_TIMEOUT_MS`.
    /// With `stores` (the caller puts the pages into the table) a walk also
    /// retries when a migration of this mirror moved pages meanwhile
    /// ([`Mirror::validated`]).
    fn fault_validated<'m>(
        m: &'m Mirror,
        range: &mut HmmRange<'_>,
        stores: bool,
        mut fault: impl FnMut(&mut HmmRange<'_>) -> Result,
    ) -> Result<Validated<'m, MirrorState>> {
        let t0 = Instant::<Monotonic>::now();
        loop {
            if Self::deadline_passed(&t0) {
                return Err(EBUSY);
            }
            let moved = m.moved.load(Ordering::Acquire);
            range.read_begin();
            match fault(range) {
                Err(e) if e == EBUSY => continue,
                Err(e) => return Err(e),
                Ok(()) => {}
            }
            if let Some(g) = range.validate(&m.state)? {
                if !stores || m.validated(&g, moved) {
                    return Ok(g);
                }
            }
        }
    }

    /// `dmirror_range_fault()`.
    fn range_fault(&self, mm: &MmWithUser, range: &mut HmmRange<'_>) -> Result {
        let m = self.mirror();
        let g = Self::fault_validated(m, range, true, |r| r.fault(&MmapRead::lock(mm)))?;
        m.do_fault(&g, range)
    }

    /// `dmirror_range_fault_unlocked()`.
    fn range_fault_unlocked(&self, range: &mut HmmRange<'_>, timeout: usize) -> Result {
        let m = self.mirror();
        loop {
            let moved = m.moved.load(Ordering::Acquire);
            range.fault_unlocked_timeout(timeout)?;
            let Some(g) = range.validate(&m.state)? else {
                continue;
            };
            if !m.validated(&g, moved) {
                continue;
            }
            return m.do_fault(&g, range);
        }
    }

    /// Maps this device's pages of `[start, end)` in the table from the page
    /// tables (`hmm_range_fault()` without faults, validated under the mutex).
    fn map_device_pages(&self, guard: &MmapRead<'_>, start: usize, end: usize) -> Result {
        let m = self.mirror();
        let mut range = HmmRange::new(&self.notifier, 0, m.owner());
        let mut addr = start;
        while addr < end {
            let next = range.set_window(addr, end);
            let g = Self::fault_validated(m, &mut range, true, |r| r.fault(guard))?;
            m.store_own_pages(&g, &range)?;
            drop(g);
            addr = next;
        }
        Ok(())
    }

    /// `dmirror_fault()` / `dmirror_fault_unlocked()`.
    fn fault(&self, start: usize, end: usize, write: bool, unlocked: Option<usize>) -> Result {
        let mm = self.mmget().ok_or(EFAULT)?;
        let flags = hmm::REQ_FAULT | if write { hmm::REQ_WRITE } else { 0 };
        let mut range = HmmRange::new(&self.notifier, flags, self.mirror().owner());
        let mut addr = start;
        while addr < end {
            let next = range.set_window(addr, end);
            match unlocked {
                None => self.range_fault(&mm, &mut range)?,
                Some(t) => self.range_fault_unlocked(&mut range, t)?,
            }
            addr = next;
        }
        Ok(())
    }
}
