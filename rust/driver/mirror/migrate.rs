// SPDX-License-Identifier: GPL-2.0

//! `HMM_DMIRROR_MIGRATE_TO_DEV` and `MIGRATE_TO_SYS`, and the CPU fault on a
//! device page (`migrate_to_ram`): the migration loops in both directions.

#![allow(unsafe_code)]

use super::*;

/// A device page that a migration back to system memory moves.
struct Moving<'a> {
    /// The index of its src entry.
    i: usize,
    /// Whether that entry is writable.
    write: bool,
    /// Its backing pages (the data): the backing folio's for a large entry.
    data: Pages<'a>,
    /// Its order (0 unless the entry is compound).
    order: u32,
    /// The entries it spans, clipped to the window.
    nr: usize,
}

impl Mirror {
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
        let (spage, write, is_large) = match src.get(i) {
            Src::Skip => return 1,
            Src::Device(sp) => {
                pr_warn_once!(
                    "page already in device spage pfn: 0x{:x}\n",
                    sp.page().pfn()
                );
                return 1;
            }
            Src::Hole { write, large } => (None, write, large),
            Src::System(sp) => (Some(sp), sp.writable(), sp.is_large()),
        };
        let dpage = if this.take_fail_alloc() {
            None
        } else {
            this.device().alloc_page(is_large)
        };
        let Some(dpage) = dpage else {
            if !is_large {
                return 1;
            }
            return Self::migrate_entry_base_pages(this, spage, write, dst, i);
        };
        let Some(rpage) = devmem::backing_page(dpage.page()) else {
            return 1;
        };
        // SAFETY: TODO[PGDATA]. The backing page (the head of the backing folio) is the owner
        // slot of our new, locked device page; it points back to the mirror, as in the C
        // driver.
        unsafe { owner::set(rpage, this) };
        // The backing folio has the order of the device folio.
        let backing = if is_large && dpage.page().folio().is_large() {
            rpage.folio().pages()
        } else {
            Pages::one(rpage)
        };
        match spage {
            Some(sp) => {
                // A large source has the order of the device folio.
                for (to, from) in backing.iter().zip(sp.pages().iter()) {
                    // SAFETY: TODO[PAGECOPY]. Both pages are alive: ours, and the source
                    // the migration holds locked.
                    unsafe { to.copy_from(from) };
                }
            }
            None => {
                for to in backing.iter() {
                    // SAFETY: TODO[PAGECOPY]. `to` is ours.
                    unsafe { to.clear() };
                }
            }
        }
        let nr = backing.len();
        dst.set(i, dpage, write, is_large);
        nr
    }

    /// The fallback of [`Mirror::migrate_entry`] when no device folio is left for
    /// the large src entry at `i` (`spage`, or a PMD hole): order-0 device pages
    /// for each of its pages. Returns how many entries it took.
    fn migrate_entry_base_pages(
        this: &Arc<Self>,
        spage: Option<MigratePage<'_>>,
        write: bool,
        dst: &mut DstSlots<'_>,
        i: usize,
    ) -> usize {
        let from = spage.map(|sp| sp.pages());
        let nr = from.map_or(HPAGE_PMD_NR, |f| f.len());
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
            match from.map(|f| f.get(k)) {
                // SAFETY: TODO[PAGECOPY]. Both pages are alive (ours, and the `k`th of the
                // source folio, which the migration holds locked).
                Some(Some(src_page)) => unsafe { rpage.copy_from(src_page) },
                Some(None) => {}
                // SAFETY: TODO[PAGECOPY]. `rpage` is ours.
                None => unsafe { rpage.clear() },
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
    /// Returns whether the table is up to date: it mapped them, or nothing
    /// moved (no page and no hole: nothing new to map); if not, the caller walks
    /// the page tables after finalize ([`DmirrorFile::map_device_pages`]). Under
    /// contention most attempts move nothing, and that walk retries on every
    /// other thread's invalidation.
    fn erase_moved_and_map(&self, m: &Migrated<'_>, valid: impl FnOnce() -> bool) -> bool {
        let g = self.state.lock();
        self.note_moved(&g);
        let start_pfn = m.start() >> PAGE_SHIFT;
        let mut moved_any = false;
        for i in 0..m.len() {
            let Some(moved) = m.moved(i) else {
                continue;
            };
            moved_any = true;
            let nr = if moved.large { HPAGE_PMD_NR } else { 1 };
            // `erase_range` takes the last pfn, not the end.
            let last = (start_pfn + i + nr).min(start_pfn + m.len()) - 1;
            g.table.erase_range(start_pfn + i, last);
        }
        !moved_any || (valid() && self.map_moved(&g, m).is_ok())
    }

    /// Stores the device pages a migration to the device moved in, from its dst
    /// array, before finalize. Safe against a zap only if no invalidation other
    /// than this mirror's own migrations ran since before the setup (checked
    /// by the caller): a zap after the check erases these entries under the
    /// mutex, one before it would leave an entry whose page finalize frees.
    fn map_moved(&self, g: &MirrorState, m: &Migrated<'_>) -> Result {
        let first = m.start() >> PAGE_SHIFT;
        let n = m.len();
        let mut i = 0;
        while i < n {
            let Some(d) = m.dst(i).filter(|_| m.moved(i).is_some()) else {
                i += 1;
                continue;
            };
            let nr = d.pages().len().min(n - i);
            let Some(rpage) = Self::map_entry(d.page()) else {
                i += nr;
                continue;
            };
            // The backing folio of a device folio has its order.
            let data = if d.is_large() {
                rpage.folio().pages()
            } else {
                Pages::one(rpage)
            };
            let tag = if d.writable() { Tag::Write } else { Tag::Read };
            for (k, page) in data.iter().take(nr).enumerate() {
                // SAFETY: TODO[XATAG]. The mutex is held and the caller checked that no other
                // invalidation came since the setup: the page stays until a later one erases
                // the entry under the mutex (see `map_moved`'s doc).
                unsafe { g.table.store(first + i + k, page, tag) }?;
            }
            i += nr;
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
            let sp = match src.get(i) {
                Src::Device(sp) => sp,
                Src::System(_) => {
                    if warn {
                        pr_warn!("not a device page\n");
                    }
                    i += 1;
                    continue;
                }
                Src::Skip | Src::Hole { .. } => {
                    i += 1;
                    continue;
                }
            };
            let Some(backing) = devmem::backing_page(sp.page()) else {
                i += 1;
                continue;
            };
            // The backing folio of a device folio has its order.
            let data = if sp.is_large() {
                backing.folio().pages()
            } else {
                Pages::one(backing)
            };
            let order = data.len().trailing_zeros();
            let nr = data.len().min(n - i);
            f(&Moving {
                i,
                write: sp.writable(),
                data,
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
        self.erase_moving(start, src);
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
                dst.set(m.i, p.lock(), m.write, m.order != 0);
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
    fn erase_moving(&self, start: usize, src: SrcEntries<'_>) {
        let g = self.state.lock();
        self.note_moved(&g);
        let first = start >> PAGE_SHIFT;
        let n = src.len();
        let mut i = 0;
        while i < n {
            let Some(sel) = src.selected(i).filter(|sel| sel.has_page) else {
                i += 1;
                continue;
            };
            let nr = if sel.large {
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
        let from = m.data.iter().take(m.nr);
        match dst.get(m.i).filter(|d| d.is_large()) {
            // One system folio of the source's order.
            Some(d) => {
                for (to, from) in d.pages().iter().zip(from) {
                    // SAFETY: TODO[PAGECOPY]. Both pages are alive (ours, and the
                    // migration's locked source).
                    unsafe { to.copy_from(from) };
                }
            }
            // A system page per entry (or the fallback's order-0 pages).
            None => {
                for (k, from) in from.enumerate() {
                    if let Some(d) = dst.get(m.i + k) {
                        // SAFETY: TODO[PAGECOPY]. As above.
                        unsafe { d.page().copy_from(from) };
                    }
                }
            }
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

/// The VMA at `addr` and the end of the next migration window from `addr`:
/// at most `PTRS_PER_PTE` pages, within the VMA and before `end`. `EINVAL`
/// for an address without a readable VMA, as the C driver.
fn migration_window<'a>(
    guard: &'a MmapRead<'_>,
    addr: usize,
    end: usize,
) -> Result<(&'a VmaRef, usize)> {
    let vma = guard.vma_lookup(addr).ok_or(EINVAL)?;
    if vma.flags() & kernel::mm::virt::flags::READ == 0 {
        return Err(EINVAL);
    }
    let next = end
        .min(addr.saturating_add(PTRS_PER_PTE << PAGE_SHIFT))
        .min(vma.end());
    Ok((vma, next))
}

impl DmirrorFile {
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
                let (vma, next) = migration_window(&guard, addr, end)?;
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
            let (vma, next) = migration_window(&guard, addr, end)?;
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
            cmd.cpages += done.moved_pages() as u64;
            done.finalize();
            addr = next;
        }
        Ok(())
    }
}
