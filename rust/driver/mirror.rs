// SPDX-License-Identifier: GPL-2.0

//! The per-open mirror of a process address space and the ioctl operations.
//!
//! Owns [`Mirror`] (device, the mutex with the data it guards,
//! [`MirrorState`], which is also the interval notifier's user lock, the
//! FLAGS word, the marks of the tasks migrating through it and the count of
//! their erases) and [`DmirrorFile`], the open file: the mirror embedded in its interval notifier
//! over the whole mm. Everything here is safe driver logic on top of the abstractions, except the
//! `migrate_to_ram` entry, which recovers the mirror from a backing page. Lock order: mmap_lock
//! (read), then the mirror mutex.

#![allow(unsafe_code)]

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
        folio::{mpfn, LockedPage, NewPage, PageRef},
        hmm::{self, HmmPfn, HmmRange, Validated},
        memremap::DeviceFault,
        migrate::{Collected, DstSlots, Migrated, PfnArrays, SrcEntries, VmaMigrateArgs},
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

/// Upper bound of the `TEST_EXCLUSIVE_DELAY` hook's sleep, in ms: two
/// conversions with it still fit in the retry deadline of EXCLUSIVE
/// ([`RANGE_TIMEOUT_MS`]).
const TEST_EXCLUSIVE_DELAY_MAX_MS: u64 = 400;

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

/// A device page that a migration back to system memory moves.
struct Moving<'a> {
    /// The index of its src entry.
    i: usize,
    /// That src entry.
    s: usize,
    /// Its backing page (the data).
    spage: PageRef<'a>,
    /// Its order (0 unless the entry is compound).
    order: u32,
    /// The entries it spans, clipped to the window.
    nr: usize,
}

/// A bounce buffer (`struct dmirror_bounce`) for `[addr, addr + size)`.
///
/// For reads it starts empty and `do_read` appends page after page (so it
/// holds exactly the `cpages` pages read so far, never uninitialised bytes);
/// for writes it is filled from user space first.
///
/// It is `vmalloc()` memory of order-0 pages, as the C driver's. A `KVVec`
/// (`kvmalloc()`) takes high-order pages for it: `kmalloc()` up to 4 MiB, and
/// a huge-page `vmalloc()` (order 9) from 2 MiB. Those competed with the THP
/// allocations of the migration (user THPs, the device pages' order-9 backing
/// folios) and made THP migration to the device of 256 MiB half as fast as
/// the C driver's (`make bench`, docs/benchmarks.md).
struct Bounce {
    buf: VVec<u8>,
    addr: usize,
    size: usize,
    cpages: usize,
}

impl Bounce {
    /// An empty buffer with room for `size` bytes.
    fn for_read(addr: usize, size: usize) -> Result<Self> {
        Ok(Self {
            buf: VVec::with_capacity(size, GFP_KERNEL)?,
            addr,
            size,
            cpages: 0,
        })
    }

    /// `size` bytes copied from the user buffer at `ptr` (`EFAULT` if it is not readable).
    fn from_user(addr: usize, size: usize, ptr: usize) -> Result<Self> {
        let mut buf = VVec::with_capacity(size, GFP_KERNEL)?;
        UserSlice::new(UserPtr::from_addr(ptr), size)
            .reader()
            .read_all(&mut buf, GFP_KERNEL)
            .map_err(|_| EFAULT)?;
        Ok(Self {
            buf,
            addr,
            size,
            cpages: 0,
        })
    }

    /// Copies the whole buffer to the user buffer at `ptr` (`EFAULT` if it is
    /// not writable); only called once every page was read.
    fn to_user(&self, ptr: usize) -> Result {
        if self.buf.len() != self.size {
            return Err(EINVAL);
        }
        UserSlice::new(UserPtr::from_addr(ptr), self.size)
            .writer()
            .write_slice(&self.buf)
            .map_err(|_| EFAULT)
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

    /// `dmirror_do_read()`: copies mirrored pages into the bounce buffer.
    fn do_read(&self, g: &MirrorState, start: usize, end: usize, b: &mut Bounce) -> Result {
        // Reads resume where the last one stopped: the buffer holds the pages before `start`.
        if b.buf.len() != ((start - b.addr) & PAGE_MASK) {
            return Err(EINVAL);
        }
        for pfn in (start >> PAGE_SHIFT)..(end >> PAGE_SHIFT) {
            let (page, _) = g.table.load(pfn).ok_or(ENOENT)?;
            // SAFETY: TODO[PAGECOPY]. The mirror mutex is held (`_g`), so the notifier cannot have
            // let the page go: the entry would have been erased first.
            unsafe { page.append_to(&mut b.buf) }?;
            b.cpages += 1;
        }
        Ok(())
    }

    /// `dmirror_do_write()`: copies the bounce buffer into writable mirrored pages.
    fn do_write(&self, g: &MirrorState, start: usize, end: usize, b: &mut Bounce) -> Result {
        let mut off = (start - b.addr) & PAGE_MASK;
        for pfn in (start >> PAGE_SHIFT)..(end >> PAGE_SHIFT) {
            let page = match g.table.load(pfn) {
                Some((page, Tag::Write)) => page,
                _ => return Err(ENOENT),
            };
            let src: &[u8; PAGE_SIZE] = b
                .buf
                .get(off..off + PAGE_SIZE)
                .and_then(|s| s.try_into().ok())
                .ok_or(EINVAL)?;
            // SAFETY: TODO[PAGECOPY]. As in `do_read`.
            unsafe { page.write_from(src) };
            off += PAGE_SIZE;
            b.cpages += 1;
        }
        Ok(())
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

    /// PROJECT-ONLY test hook `HMM_DMIRROR_TEST_LOCK_PAGES` (not in the
    /// upstream ABI): takes a reference to and locks the page of each present
    /// system page of the caller's range whose lock is free, until
    /// `TEST_UNLOCK_PAGES` or close. `cpages` = pages locked.
    pub(crate) fn test_lock_pages(&self, cmd: &mut HmmDmirrorCmd) -> Result {
        let (start, end) = cmd_range(cmd)?;
        let mut locked = self.test_locked.lock();
        let mut addr = start;
        while addr < end {
            if let Some(page) = LockedPage::trylock_user_page(addr) {
                locked.push(page, GFP_KERNEL)?;
                cmd.cpages += 1;
            }
            addr += PAGE_SIZE;
        }
        Ok(())
    }

    /// PROJECT-ONLY test hook `HMM_DMIRROR_TEST_UNLOCK_PAGES`: releases every
    /// page lock taken by `TEST_LOCK_PAGES`; `cpages` = pages released.
    pub(crate) fn test_unlock_pages(&self, cmd: &mut HmmDmirrorCmd) {
        let pages = core::mem::take(&mut *self.test_locked.lock());
        cmd.cpages = pages.len() as u64;
        drop(pages);
    }

    /// PROJECT-ONLY test hook `HMM_DMIRROR_TEST_EXCLUSIVE_DELAY` (not in the
    /// upstream ABI): from now on EXCLUSIVE through this file sleeps
    /// `npages - 1` ms (at most [`TEST_EXCLUSIVE_DELAY_MAX_MS`]) after each
    /// `make_device_exclusive()`, before it checks the notifier sequence and
    /// stores the entry, which widens that window for tests. `cpages` = the
    /// conversions this mirror retried so far because an invalidation came in
    /// between.
    pub(crate) fn test_exclusive_delay(&self, cmd: &mut HmmDmirrorCmd) {
        let ms = cmd
            .npages
            .saturating_sub(1)
            .min(TEST_EXCLUSIVE_DELAY_MAX_MS);
        self.test_exclusive_delay_ms.store(ms, Ordering::Relaxed);
        cmd.cpages = self.exclusive_retries.load(Ordering::Relaxed);
    }

    /// The owner of this mirror's `make_device_exclusive()` conversions: the
    /// mirror itself, so that only its own notifier recognises (and ignores)
    /// the `MMU_NOTIFY_EXCLUSIVE` invalidation of its own conversions. Other
    /// mirrors, of this device too, see an unknown owner and erase, as they do
    /// for the C driver's conversions (which have no owner).
    fn exclusive_owner(&self) -> *const c_void {
        core::ptr::from_ref(self).cast()
    }

    /// `dmirror_check_atomic()`.
    pub(crate) fn check_atomic(&self, start: usize, end: usize) -> Result {
        let g = self.state.lock();
        for pfn in (start >> PAGE_SHIFT)..(end >> PAGE_SHIFT) {
            if g.table.tag(pfn) == Some(Tag::Atomic) {
                return Err(EPERM);
            }
        }
        Ok(())
    }

    /// The backing page of a device page the mirror maps, for the table.
    fn map_entry(page: PageRef<'_>) -> Option<PageRef<'_>> {
        devmem::backing_page(page)
    }

    /// `dmirror_migrate_alloc_and_copy()`: device pages for every collected system
    /// page, each pointing to this mirror with a reference ([`owner`]).
    fn migrate_alloc_and_copy(this: &Arc<Self>, c: &mut Collected<'_>) {
        let (src, mut dst) = c.arrays();
        let mut i = 0;
        while i < src.len() {
            i += Self::migrate_entry(this, src, &mut dst, i);
        }
    }

    /// Fills `dst[i..]` for the src entry `i` of a migration to the device;
    /// returns how many entries that took (the pages of a folio moved whole).
    fn migrate_entry(
        this: &Arc<Self>,
        src: SrcEntries<'_>,
        dst: &mut DstSlots<'_>,
        i: usize,
    ) -> usize {
        let s = src.raw()[i];
        if s & mpfn::MIGRATE == 0 {
            return 1;
        }
        let is_large = s & mpfn::COMPOUND != 0;
        let spage = src.page(i);
        if let Some(sp) = spage {
            if sp.is_zone_device() {
                pr_warn_once!("page already in device spage pfn: 0x{:x}\n", sp.pfn());
                return 1;
            }
        }
        let dpage = if this.take_fail_alloc() {
            None
        } else {
            this.device().alloc_page(is_large)
        };
        let Some(dpage) = dpage else {
            if !is_large {
                return 1;
            }
            return Self::migrate_entry_base_pages(this, s, spage, dst, i);
        };
        let Some(rpage) = devmem::backing_page(dpage.page()) else {
            return 1;
        };
        // SAFETY: TODO[PGDATA]. The backing page (the head of the backing folio) is the owner
        // slot of our new, locked device page; it points back to the mirror, as in the C
        // driver.
        unsafe { owner::set(rpage, this) };
        let nr = if is_large && dpage.page().folio().is_large() {
            dpage.page().folio().nr_pages()
        } else {
            1
        };
        for k in 0..nr {
            // SAFETY: TODO[MIGENT]. `k` is below the size of the backing folio, which has the
            // order of the device folio.
            let dst_page = unsafe { rpage.nth(k) };
            match spage {
                // SAFETY: TODO[PAGECOPY]. `k` is below the size of the locked source folio
                // (a compound source has the order of the device folio); both pages are alive.
                Some(sp) => unsafe { dst_page.copy_from(sp.nth(k)) },
                // SAFETY: TODO[PAGECOPY]. `dst_page` is ours.
                None => unsafe { dst_page.clear() },
            }
        }
        dst.set(i, dpage, s & mpfn::WRITE != 0, is_large);
        nr
    }

    /// The fallback of [`Mirror::migrate_entry`] when no device folio is left for
    /// the large src entry `s` at `i`: order-0 device pages for each of its
    /// pages. Returns how many entries it took.
    fn migrate_entry_base_pages(
        this: &Arc<Self>,
        s: usize,
        spage: Option<PageRef<'_>>,
        dst: &mut DstSlots<'_>,
        i: usize,
    ) -> usize {
        let nr = spage.map_or(HPAGE_PMD_NR, |sp| sp.folio().nr_pages());
        let spfn = s >> mpfn::SHIFT;
        let write = s & mpfn::WRITE != 0;
        let mut k = 0;
        while k < nr && i + k < dst.len() {
            let Some(dp) = this.device().alloc_page(false) else {
                pr_warn!("out of device memory\n");
                break;
            };
            let Some(rpage) = devmem::backing_page(dp.page()) else {
                break;
            };
            // SAFETY: TODO[PGDATA]. The backing page is the owner slot of our new, locked
            // device page.
            unsafe { owner::set(rpage, this) };
            if spage.is_some() {
                // SAFETY: TODO[MIGENT]. `spfn + k` is a page of the locked source folio.
                if let Some(src_page) = unsafe { PageRef::from_pfn(spfn + k) } {
                    // SAFETY: TODO[PAGECOPY]. Both pages are alive (ours, and locked by the
                    // migration).
                    unsafe { rpage.copy_from(src_page) };
                }
            } else {
                // SAFETY: TODO[PAGECOPY]. `rpage` is ours.
                unsafe { rpage.clear() };
            }
            dst.set(i + k, dp, write, false);
            k += 1;
        }
        // A page that got no device page is left behind (and the entry after it).
        if k < nr {
            k + 1
        } else {
            k
        }
    }

    /// After `migrate_vma_pages()` of a migration to the device: erases the
    /// entries of the source pages that moved (`migrate_vma_finalize()` frees
    /// them, and the invalidation of our own migration left their entries
    /// alone), then, if `valid()` says under the mutex that no other
    /// invalidation reached the mirror since before the setup, maps the new
    /// device pages from the dst array, as `dmirror_migrate_finalize_and_map()`.
    /// Returns whether it mapped them; if not, the caller walks the page tables
    /// after finalize ([`DmirrorFile::map_device_pages`]).
    fn erase_moved_and_map(&self, m: &Migrated<'_>, valid: impl FnOnce() -> bool) -> bool {
        let g = self.state.lock();
        self.note_moved(&g);
        let start_pfn = m.start() >> PAGE_SHIFT;
        for (i, &s) in m.src().iter().enumerate() {
            if s & mpfn::MIGRATE == 0 {
                continue;
            }
            let nr = if s & mpfn::COMPOUND != 0 {
                HPAGE_PMD_NR
            } else {
                1
            };
            // `erase_range` takes the last pfn, not the end.
            let last = (start_pfn + i + nr).min(start_pfn + m.src().len()) - 1;
            g.table.erase_range(start_pfn + i, last);
        }
        valid() && self.map_moved(&g, m).is_ok()
    }

    /// Stores the device pages a migration to the device moved in, from its dst
    /// array, before finalize. Safe against a zap only if no invalidation other
    /// than this mirror's own migrations ran since before the setup (checked
    /// by the caller): a zap after the check erases these entries under the
    /// mutex, one before it would leave an entry whose page finalize frees.
    fn map_moved(&self, g: &MirrorState, m: &Migrated<'_>) -> Result {
        let first = m.start() >> PAGE_SHIFT;
        let (src, dst) = (m.src(), m.dst());
        let mut i = 0;
        while i < src.len() {
            let (s, d) = (src[i], dst[i]);
            let Some(dpage) = m.dst_page(i).filter(|_| s & mpfn::MIGRATE != 0) else {
                i += 1;
                continue;
            };
            let nr = if d & mpfn::COMPOUND != 0 {
                dpage.folio().nr_pages().min(src.len() - i)
            } else {
                1
            };
            let Some(rpage) = Self::map_entry(dpage) else {
                i += nr;
                continue;
            };
            let tag = if d & mpfn::WRITE != 0 {
                Tag::Write
            } else {
                Tag::Read
            };
            for k in 0..nr {
                // SAFETY: TODO[BACKING]. The backing folio of a device page has its order (a
                // compound dst is the head of its folio), so the `k`th page is in it.
                let page = unsafe { rpage.nth(k) };
                // SAFETY: TODO[XATAG]. The mutex is held and the caller checked that no other
                // invalidation came since the setup: the page stays until a later one erases
                // the entry under the mutex (see `map_moved`'s doc).
                unsafe { g.table.store(first + i + k, page, tag) }?;
            }
            i += nr;
        }
        Ok(())
    }

    /// Stores this device's pages that a validated `hmm_range_fault()` without
    /// faults reports, and leaves every other entry of the window alone.
    fn store_own_pages(&self, g: &Validated<'_, MirrorState>, range: &HmmRange<'_>) -> Result {
        let first = range.start() >> PAGE_SHIFT;
        for (i, p) in range.pfns(g)?.enumerate() {
            let Some(page) = p.page_at((first + i) << PAGE_SHIFT) else {
                continue;
            };
            if !devmem::is_our_page(page) {
                continue;
            }
            // SAFETY: TODO[PGDATA]. `page` is a device page of ours that the page tables map, and
            // the validated range and the mirror mutex keep it mapped (its unmapping would
            // invalidate under this mutex first).
            let device = unsafe { devmem::page_device(page) };
            if !core::ptr::eq(device, self.device()) {
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

    /// The device pages a migration back to system memory collected, in
    /// order; `f` is called for each, and its first error is returned. With
    /// `warn`, a collected page that is not a device page is reported
    /// (`WARN_ON` in the C driver; the entry is skipped either way).
    fn for_each_moving<E>(
        src: SrcEntries<'_>,
        warn: bool,
        mut f: impl FnMut(&Moving<'_>) -> core::result::Result<(), E>,
    ) -> core::result::Result<(), E> {
        let n = src.len();
        let mut i = 0;
        while i < n {
            let s = src.raw()[i];
            let Some(spage) = src.page(i) else {
                i += 1;
                continue;
            };
            if !spage.is_device_private() && !spage.is_device_coherent() {
                if warn {
                    pr_warn!("not a device page\n");
                }
                i += 1;
                continue;
            }
            let Some(spage) = devmem::backing_page(spage) else {
                i += 1;
                continue;
            };
            let order = if s & mpfn::COMPOUND != 0 {
                spage.folio().order()
            } else {
                0
            };
            let nr = (1usize << order).min(n - i);
            f(&Moving {
                i,
                s,
                spage,
                order,
                nr,
            })?;
            i += nr;
        }
        Ok(())
    }

    /// `dmirror_devmem_fault_alloc_and_copy()`: system pages for the collected
    /// device pages; `0`, or `VM_FAULT_OOM` after which the caller abandons the
    /// migration ([`Collected::abandon`] frees the pages allocated so far).
    ///
    /// In three steps. Every destination page is allocated before any table
    /// entry goes, so that a failed allocation (`FAIL_ALLOC`, or a real one)
    /// leaves the device pages mirrored, as in the C driver, which erases the
    /// entry of a page only when it copies it (see `failed_migration_keeps_mirror`
    /// in selftests/dmirror_contract.c). Then the entries of the pages that
    /// move are erased under the mutex: a READ copying from one of their backing
    /// pages finishes first, and no READ or WRITE through the mirror reaches
    /// them afterwards (the C driver erases without the mutex, so a READ can
    /// copy from a freed page). Then the data is copied.
    fn devmem_alloc_and_copy(&self, c: &mut Collected<'_>) -> bindings::vm_fault_t {
        let vma = c.vma();
        let start = c.start();
        let (src, mut dst) = c.arrays();
        let alloc = Self::for_each_moving(src, true, |m| {
            self.alloc_system_dst(vma, start + (m.i << PAGE_SHIFT), m, &mut dst)
        });
        if let Err(ret) = alloc {
            return ret;
        }
        self.erase_moving(start, src.raw());
        let _ = Self::for_each_moving(src, false, |m| {
            Self::copy_to_system(m, &dst);
            Ok::<(), ()>(())
        });
        0
    }

    /// Allocates the system destination of the moving device page `m` at
    /// `addr` of `vma`: a folio of its order, or, if that fails, order-0 pages
    /// for each of its pages. `Err(VM_FAULT_OOM)` if neither works.
    fn alloc_system_dst(
        &self,
        vma: &VmaRef,
        addr: usize,
        m: &Moving<'_>,
        dst: &mut DstSlots<'_>,
    ) -> core::result::Result<(), bindings::vm_fault_t> {
        // FAIL_ALLOC forces the next allocation here to fail, as in the C driver, with one
        // difference: on a coherent device, which holds no PMD folios in this driver (see
        // `DmirrorDevice::alloc_page`), only a large allocation consumes it. The flag exists
        // to test the THP fallback, and a failed order-0 allocation would fail the whole
        // migration with `ENOMEM` instead.
        let fail = (m.order != 0 || self.device().mtype() == MemoryType::Private)
            && self.take_fail_alloc();
        if !fail {
            let p = NewPage::vma_alloc(bindings::GFP_HIGHUSER_MOVABLE, m.order, vma, addr);
            if let Some(p) = p {
                dst.set(m.i, p.lock(), m.s & mpfn::WRITE != 0, m.order != 0);
                return Ok(());
            }
        }
        if m.order == 0 {
            return Err(bindings::vm_fault_reason_VM_FAULT_OOM);
        }
        for k in 0..m.nr {
            // `k < nr` pages past `addr` are inside the window (`for_each_moving` clips `nr`
            // to it).
            let p = NewPage::vma_alloc(
                bindings::GFP_HIGHUSER_MOVABLE,
                0,
                vma,
                addr + (k << PAGE_SHIFT),
            );
            let p = p.ok_or(bindings::vm_fault_reason_VM_FAULT_OOM)?;
            dst.set(m.i + k, p.lock(), false, false);
        }
        Ok(())
    }

    /// Erases, under the mutex, the table entries of the pages a migration back
    /// to system memory moves (from the src bits alone: no page is looked at).
    fn erase_moving(&self, start: usize, src: &[usize]) {
        let g = self.state.lock();
        self.note_moved(&g);
        let first = start >> PAGE_SHIFT;
        let n = src.len();
        let mut i = 0;
        while i < n {
            let s = src[i];
            if s & mpfn::MIGRATE == 0 || s & mpfn::VALID == 0 {
                i += 1;
                continue;
            }
            let nr = if s & mpfn::COMPOUND != 0 {
                HPAGE_PMD_NR.min(n - i)
            } else {
                1
            };
            for k in 0..nr {
                g.table.erase(first + i + k);
            }
            i += nr;
        }
    }

    /// Copies the moving device page `m` (its backing page) to the system
    /// pages of its destination entries.
    fn copy_to_system(m: &Moving<'_>, dst: &DstSlots<'_>) {
        let compound = dst.raw(m.i) & mpfn::COMPOUND != 0;
        for k in 0..m.nr {
            let Some(dpage) = dst.page(if compound { m.i } else { m.i + k }) else {
                continue;
            };
            // SAFETY: TODO[MIGENT]. A compound dst is the head of a folio of the source's
            // order, so the `k`th page is in it; otherwise `k` is 0 for the page itself.
            let dst_page = unsafe { dpage.nth(if compound { k } else { 0 }) };
            // SAFETY: TODO[PAGECOPY]. `k` is below the size of the source folio; both pages
            // are alive (ours, and the migration's locked source).
            unsafe { dst_page.copy_from(m.spage.nth(k)) };
        }
    }

    /// `dmirror_devmem_fault()`: the `migrate_to_ram` callback of every chunk.
    pub(crate) fn devmem_fault(fault: &DeviceFault<'_>) -> bindings::vm_fault_t {
        let page = fault.page();
        let folio = page.folio();
        // SAFETY: TODO[BACKING]. A device-private page of ours has its backing page in
        // `zone_device_data`.
        let Some(rpage) = (unsafe { PageRef::from_raw(folio.zone_device_data().cast()) }) else {
            return bindings::vm_fault_reason_VM_FAULT_SIGBUS;
        };
        // SAFETY: TODO[PGDATA]. The backing page is the owner slot of the faulting page, which the
        // fault holds locked and referenced.
        let Some(mirror) = (unsafe { owner::get::<Mirror>(rpage) }) else {
            return bindings::vm_fault_reason_VM_FAULT_SIGBUS;
        };
        // The owner reference keeps the mirror alive for this fault, even if its file was
        // closed and the eviction on close left this page behind (see `owner`).
        let mirror = &*mirror;
        // The mirror that owns the page migrates it back (and drops its entries in
        // `devmem_alloc_and_copy`), as an ioctl of its own would.
        let _migrating = mirror.migrating();

        let order = if fault.pte_mapped() { 0 } else { folio.order() };
        let span = PAGE_SIZE << order;
        let start = fault.address() & !(span - 1);
        let vma = fault.vma();
        let mut flags = mirror.select_device();
        if order != 0 {
            flags |= bindings::migrate_vma_direction_MIGRATE_VMA_SELECT_COMPOUND;
        }
        let args = VmaMigrateArgs {
            start,
            end: start + span,
            owner: mirror.owner(),
            flags,
            fault_page: page.as_ptr(),
        };
        let mut pfns = PfnArrays::new();
        let mut c = match Collected::setup(vma, args, &mut pfns) {
            Ok(c) => c,
            Err(e) if e == ENOMEM => return bindings::vm_fault_reason_VM_FAULT_OOM,
            Err(_) => return bindings::vm_fault_reason_VM_FAULT_SIGBUS,
        };
        let ret = mirror.devmem_alloc_and_copy(&mut c);
        if ret != 0 {
            c.abandon();
            return ret;
        }
        // No device finalize step is needed: the table entries were erased above.
        c.pages().finalize();
        0
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

/// The data of the temporary notifier of one SNAPSHOT window.
#[pin_data]
struct SnapshotState<'a> {
    mirror: &'a Mirror,
}

impl IntervalOps for SnapshotState<'_> {
    type State = MirrorState;

    fn lock(data: &Self) -> &Mutex<MirrorState> {
        &data.mirror.state
    }

    // Any invalidation in the window invalidates the whole snapshot: the sequence bump
    // under the mutex is all it takes.
    fn invalidate(_data: &Self, _state: &MirrorState, _inv: &Invalidation<'_>) {}
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

    /// `HMM_DMIRROR_READ` (`unlocked`: `HMM_DMIRROR_READ_UNLOCKED` with that timeout).
    pub(crate) fn read(&self, cmd: &mut HmmDmirrorCmd, unlocked: Option<usize>) -> Result {
        let (mut start, end) = cmd_range(cmd)?;
        let m = self.mirror();
        let mut b = Bounce::for_read(start, end - start)?;
        let ret = loop {
            let r = {
                let g = m.state.lock();
                m.do_read(&g, start, end, &mut b)
            };
            match r {
                Err(e) if e == ENOENT => {}
                other => break other,
            }
            start = (cmd.addr as usize) + (b.cpages << PAGE_SHIFT);
            if let Err(e) = self.fault(start, end, false, unlocked) {
                break Err(e);
            }
            cmd.faults += 1;
        };
        let ret = ret.and_then(|()| b.to_user(cmd.ptr as usize));
        cmd.cpages = b.cpages as u64;
        ret
    }

    /// `HMM_DMIRROR_WRITE`.
    pub(crate) fn write(&self, cmd: &mut HmmDmirrorCmd) -> Result {
        let (mut start, end) = cmd_range(cmd)?;
        let m = self.mirror();
        let mut b = Bounce::from_user(start, end - start, cmd.ptr as usize)?;
        let ret = loop {
            let r = {
                let g = m.state.lock();
                m.do_write(&g, start, end, &mut b)
            };
            match r {
                Err(e) if e == ENOENT => {}
                other => break other,
            }
            start = (cmd.addr as usize) + (b.cpages << PAGE_SHIFT);
            if let Err(e) = self.fault(start, end, true, None) {
                break Err(e);
            }
            cmd.faults += 1;
        };
        cmd.cpages = b.cpages as u64;
        ret
    }

    /// Reads `[start, end)` back from the table without faulting, into `ptr`.
    fn read_back(&self, cmd: &mut HmmDmirrorCmd, start: usize, end: usize) -> Result {
        let m = self.mirror();
        let mut b = Bounce::for_read(start, end - start)?;
        let r = {
            let g = m.state.lock();
            m.do_read(&g, start, end, &mut b)
        };
        let r = r.and_then(|()| b.to_user(cmd.ptr as usize));
        cmd.cpages = b.cpages as u64;
        r
    }

    /// `HMM_DMIRROR_MIGRATE_TO_DEV`.
    pub(crate) fn migrate_to_device(&self, cmd: &mut HmmDmirrorCmd) -> Result {
        let (start, end) = cmd_range(cmd)?;
        let m = self.mirror();
        let mm = self.mmget().ok_or(EINVAL)?;
        {
            let mut pfns = PfnArrays::new();
            let _migrating = m.migrating();
            let guard = MmapRead::lock(&mm);
            let mut addr = start;
            while addr < end {
                let vma = guard.vma_lookup(addr).ok_or(EINVAL)?;
                if vma.flags() & kernel::mm::virt::flags::READ == 0 {
                    return Err(EINVAL);
                }
                let next = end
                    .min(addr.saturating_add(PTRS_PER_PTE << PAGE_SHIFT))
                    .min(vma.end());
                let args = VmaMigrateArgs {
                    start: addr,
                    end: next,
                    owner: m.owner(),
                    flags: bindings::migrate_vma_direction_MIGRATE_VMA_SELECT_SYSTEM
                        | bindings::migrate_vma_direction_MIGRATE_VMA_SELECT_COMPOUND,
                    fault_page: core::ptr::null_mut(),
                };
                // Before the setup, so that any invalidation of the window but this
                // mirror's own migrations (which leave the sequence alone) shows.
                let seq = self.notifier.read_begin();
                let mut c = Collected::setup(vma, args, &mut pfns)?;
                Mirror::migrate_alloc_and_copy(self.mirror_ref(), &mut c);
                let done = c.pages();
                // As the C driver, map the new pages from the dst array before finalize,
                // but only if nothing else invalidated the mirror meanwhile: the C driver
                // raced with a zap (MADV_DONTNEED needs only the mmap read lock) of a
                // migration entry in between, whose page finalize then frees, and the
                // entry stayed (race.zap_vs_migrate_to_dev). Otherwise the page tables after
                // finalize are the truth. The C driver ignores a failure here too.
                let mapped = m.erase_moved_and_map(&done, || {
                    seq.is_some_and(|seq| !self.notifier.read_retry(seq))
                });
                done.finalize();
                if !mapped {
                    let _ = self.map_device_pages(&guard, addr, next);
                }
                addr = next;
            }
        }
        drop(mm);
        // Return the migrated data for verification (only pages on the device).
        self.read_back(cmd, start, end)
    }

    /// `HMM_DMIRROR_MIGRATE_TO_SYS`.
    pub(crate) fn migrate_to_system(&self, cmd: &mut HmmDmirrorCmd) -> Result {
        let (start, end) = cmd_range(cmd)?;
        let m = self.mirror();
        let mm = self.mmget().ok_or(EINVAL)?;
        cmd.cpages = 0;
        let mut pfns = PfnArrays::new();
        let _migrating = m.migrating();
        let guard = MmapRead::lock(&mm);
        let mut addr = start;
        while addr < end {
            let vma = guard.vma_lookup(addr).ok_or(EINVAL)?;
            if vma.flags() & kernel::mm::virt::flags::READ == 0 {
                return Err(EINVAL);
            }
            let next = end
                .min(addr.saturating_add(PTRS_PER_PTE << PAGE_SHIFT))
                .min(vma.end());
            let args = VmaMigrateArgs {
                start: addr,
                end: next,
                owner: m.owner(),
                flags: m.select_device()
                    | bindings::migrate_vma_direction_MIGRATE_VMA_SELECT_COMPOUND,
                fault_page: core::ptr::null_mut(),
            };
            let mut c = Collected::setup(vma, args, &mut pfns)?;
            if m.devmem_alloc_and_copy(&mut c) != 0 {
                c.abandon();
                return Err(ENOMEM);
            }
            let done = c.pages();
            cmd.cpages += done
                .src()
                .iter()
                .filter(|&&s| s & mpfn::VALID != 0 && s & mpfn::MIGRATE != 0)
                .count() as u64;
            done.finalize();
            addr = next;
        }
        Ok(())
    }

    /// `dmirror_mkentry()`.
    fn mkentry(m: &Mirror, p: HmmPfn<'_>) -> u8 {
        let kind = p.page().map(|page| {
            // Most entries are system pages: one check rules out both device kinds.
            if !page.is_zone_device() {
                if page.is_zero_page() {
                    PageKind::Zero
                } else {
                    PageKind::Other
                }
            } else if page.is_device_private() || page.is_device_coherent() {
                let local = devmem::is_our_page(page)
                    // SAFETY: TODO[PGDATA]. The page is a device page of our driver, referenced by
                    // the mapping the snapshot found (checked under the mirror mutex).
                    && core::ptr::eq(unsafe { devmem::page_device(page) }, m.device());
                if page.is_device_private() {
                    PageKind::DevicePrivate(local)
                } else {
                    PageKind::DeviceCoherent(local)
                }
            } else {
                PageKind::Other
            }
        });
        uapi::snapshot_byte(
            p.is_error(),
            kind,
            p.is_write(),
            p.map_order(),
            PAGE_SHIFT as u32,
            bindings::PMD_SHIFT,
            bindings::PUD_SHIFT,
        )
    }

    /// `dmirror_range_snapshot()` for one window.
    fn range_snapshot(&self, mm: &MmWithUser, start: usize, end: usize, perm: &mut [u8]) -> Result {
        let m = self.mirror();
        // On the stack, as the C driver's: no allocation per window.
        pin_init::stack_try_pin_init!(
            let notifier: IntervalNotifier<SnapshotState<'_>> =? IntervalNotifier::insert(
                mm,
                start,
                end - start,
                try_pin_init!(SnapshotState { mirror: m }? Error),
            )
        );
        let mut range = HmmRange::new(&*notifier, 0, m.owner());
        range.set_window(start, end);
        let g = Self::fault_validated(m, &mut range, false, |r| r.fault(&MmapRead::lock(mm)))?;
        for (slot, p) in perm.iter_mut().zip(range.pfns(&g)?) {
            *slot = Self::mkentry(m, p);
        }
        drop(g);
        Ok(())
    }

    /// `HMM_DMIRROR_SNAPSHOT`.
    pub(crate) fn snapshot(&self, cmd: &mut HmmDmirrorCmd) -> Result {
        let (start, end) = cmd_range(cmd)?;
        let mm = self.mmget().ok_or(EINVAL)?;
        let mut uptr = cmd.ptr as usize;
        let mut addr = start;
        while addr < end {
            let next = end.min(addr.saturating_add(hmm::MAX_PAGES << PAGE_SHIFT));
            let mut perm = [0u8; hmm::MAX_PAGES];
            self.range_snapshot(&mm, addr, next, &mut perm)?;
            let n = (next - addr) >> PAGE_SHIFT;
            UserSlice::new(UserPtr::from_addr(uptr), n)
                .writer()
                .write_slice(&perm[..n])
                .map_err(|_| EFAULT)?;
            cmd.cpages += n as u64;
            uptr += n;
            addr = next;
        }
        Ok(())
    }

    /// `HMM_DMIRROR_EXCLUSIVE`.
    pub(crate) fn exclusive(&self, cmd: &mut HmmDmirrorCmd) -> Result {
        let (start, end) = cmd_range(cmd)?;
        let mm = self.mmget().ok_or(EINVAL)?;
        {
            let guard = MmapRead::lock(&mm);
            let mut addr = start;
            while addr < end {
                self.exclusive_page(&guard, addr)?;
                addr += PAGE_SIZE;
            }
        }
        drop(mm);
        self.read_back(cmd, start, end)
    }

    /// Makes the page at `addr` device-exclusive and stores it in the table,
    /// as the other table writers do: the notifier sequence is read before
    /// `make_device_exclusive()` and checked under the mirror mutex before the
    /// store, and an invalidation in between (a zap of the new device-exclusive
    /// entry frees the folio once this function lets it go) retries with the
    /// folio released. The conversion's own `MMU_NOTIFY_EXCLUSIVE` does not
    /// count: its owner is this mirror, which the notifier ignores, as the
    /// kernel asks of callers. What else `make_device_exclusive()` does can
    /// bump the sequence: its write fault first restores a page that is
    /// already device-exclusive (an `MMU_NOTIFY_CLEAR`), or splits a PMD, or
    /// breaks COW. So a retry first faults the page in writable
    /// (`fixup_user_fault()`, before the sequence is read): the conversion then
    /// finds a writable PTE and changes nothing else. Retries stop at the
    /// `hmm_range_fault()` deadline ([`RANGE_TIMEOUT_MS`]) with nothing stored:
    /// the read-back then finds a hole (`ENOENT`), the result the C driver gives
    /// when an invalidation erases its entry after the store.
    fn exclusive_page(&self, guard: &MmapRead<'_>, addr: usize) -> Result {
        let m = self.mirror();
        let t0 = Instant::<Monotonic>::now();
        let mut first = true;
        loop {
            if !first {
                if Self::deadline_passed(&t0) {
                    return Ok(());
                }
                m.exclusive_retries.fetch_add(1, Ordering::Relaxed);
                // Its errors are those of the conversion's own fault, which reports them.
                let _ = exclusive::fault_in_writable(guard, addr);
            }
            first = false;
            let seq = self.notifier.read_begin().ok_or(EINVAL)?;
            let excl = ExclusivePage::make(guard, addr, m.exclusive_owner())?;
            let delay = m.test_exclusive_delay_ms.load(Ordering::Relaxed);
            if delay != 0 {
                // The folio lock is held, as in the window the hook widens; a zap of the
                // entry does not take it.
                fsleep(Delta::from_millis(delay as i64));
            }
            let g = m.state.lock();
            if self.notifier.read_retry(seq) {
                drop(g);
                drop(excl);
                continue;
            }
            // SAFETY: TODO[XATAG]. The sequence is unchanged under the mutex since before the
            // conversion: the device-exclusive entry maps the page until an invalidation,
            // which erases this entry under the mutex first.
            unsafe { g.table.store(addr >> PAGE_SHIFT, excl.page(), Tag::Atomic) }?;
            drop(g);
            drop(excl);
            return Ok(());
        }
    }
}
