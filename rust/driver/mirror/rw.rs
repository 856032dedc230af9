// SPDX-License-Identifier: GPL-2.0

//! `HMM_DMIRROR_READ`, `READ_UNLOCKED` and `WRITE`: the bounce buffer and the
//! copies between it and the mirrored pages.

#![allow(unsafe_code)]

use super::*;

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

impl Mirror {
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
}

impl DmirrorFile {
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
    pub(super) fn read_back(&self, cmd: &mut HmmDmirrorCmd, start: usize, end: usize) -> Result {
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
}
