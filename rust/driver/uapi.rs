// SPDX-License-Identifier: GPL-2.0

//! The user ABI of lib/test_hmm_uapi.h.
//!
//! Owns `struct hmm_dmirror_cmd`, the ioctl numbers, the FLAGS bits and the
//! SNAPSHOT byte encoding ([`snapshot_byte`], pure logic with KUnit tests).

use kernel::{
    ioctl::_IOWR,
    transmute::{AsBytes, FromBytes},
};

/// `struct hmm_dmirror_cmd`: five `__u64`, 40 bytes, no padding.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct HmmDmirrorCmd {
    /// User address the device reads/writes.
    pub(crate) addr: u64,
    /// User address of the data buffer.
    pub(crate) ptr: u64,
    /// Number of pages.
    pub(crate) npages: u64,
    /// Out: pages copied.
    pub(crate) cpages: u64,
    /// Out: device faults seen.
    pub(crate) faults: u64,
}

// TODO[DERIVE]: no `#[derive(FromBytes, AsBytes)]` in the kernel crate yet.
// SAFETY: `HmmDmirrorCmd` is five `u64`, any bit pattern is valid.
#[allow(unsafe_code)]
unsafe impl FromBytes for HmmDmirrorCmd {}
// SAFETY: TODO[DERIVE]. `HmmDmirrorCmd` is five `u64`, no padding.
#[allow(unsafe_code)]
unsafe impl AsBytes for HmmDmirrorCmd {}

const _: () = assert!(core::mem::size_of::<HmmDmirrorCmd>() == 40);

const fn cmd(nr: u32) -> u32 {
    _IOWR::<HmmDmirrorCmd>(b'H' as u32, nr)
}

/// `HMM_DMIRROR_READ`.
pub(crate) const READ: u32 = cmd(0x00);
/// `HMM_DMIRROR_WRITE`.
pub(crate) const WRITE: u32 = cmd(0x01);
/// `HMM_DMIRROR_MIGRATE_TO_DEV`.
pub(crate) const MIGRATE_TO_DEV: u32 = cmd(0x02);
/// `HMM_DMIRROR_MIGRATE_TO_SYS`.
pub(crate) const MIGRATE_TO_SYS: u32 = cmd(0x03);
/// `HMM_DMIRROR_SNAPSHOT`.
pub(crate) const SNAPSHOT: u32 = cmd(0x04);
/// `HMM_DMIRROR_EXCLUSIVE`.
pub(crate) const EXCLUSIVE: u32 = cmd(0x05);
/// `HMM_DMIRROR_CHECK_EXCLUSIVE`.
pub(crate) const CHECK_EXCLUSIVE: u32 = cmd(0x06);
/// `HMM_DMIRROR_RELEASE`.
pub(crate) const RELEASE: u32 = cmd(0x07);
/// `HMM_DMIRROR_FLAGS`.
pub(crate) const FLAGS: u32 = cmd(0x08);
/// `HMM_DMIRROR_READ_UNLOCKED`.
pub(crate) const READ_UNLOCKED: u32 = cmd(0x09);

/// PROJECT-ONLY test hook, not in the upstream ABI (see `selftests/dmirror_test_hooks.h`):
/// lock the present system pages of a range. Only with `test_hooks=1`.
pub(crate) const TEST_LOCK_PAGES: u32 = cmd(0x40);
/// PROJECT-ONLY test hook: release the page locks taken with [`TEST_LOCK_PAGES`].
pub(crate) const TEST_UNLOCK_PAGES: u32 = cmd(0x41);

/// PROJECT-ONLY test hook: EXCLUSIVE's delay between conversion and table store.
pub(crate) const TEST_EXCLUSIVE_DELAY: u32 = cmd(0x43);

/// `HMM_DMIRROR_FLAG_FAIL_ALLOC`.
pub(crate) const FLAG_FAIL_ALLOC: u64 = 1 << 0;

/// `HMM_DMIRROR_MEMORY_DEVICE_PRIVATE` / `_COHERENT`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum MemoryType {
    /// `HMM_DMIRROR_MEMORY_DEVICE_PRIVATE`.
    Private = 1,
    /// `HMM_DMIRROR_MEMORY_DEVICE_COHERENT`.
    Coherent = 2,
}

/// SNAPSHOT bytes (`HMM_DMIRROR_PROT_*`).
pub(crate) mod prot {
    /// No valid mirror PTE.
    pub(crate) const ERROR: u8 = 0xff;
    /// Unpopulated or no access.
    pub(crate) const NONE: u8 = 0x00;
    /// Read-only.
    pub(crate) const READ: u8 = 0x01;
    /// Read/write.
    pub(crate) const WRITE: u8 = 0x02;
    /// PMD mapped.
    pub(crate) const PMD: u8 = 0x04;
    /// PUD mapped.
    pub(crate) const PUD: u8 = 0x08;
    /// The zero page.
    pub(crate) const ZERO: u8 = 0x10;
    /// Device private, this device.
    pub(crate) const DEV_PRIVATE_LOCAL: u8 = 0x20;
    /// Device private, another device.
    pub(crate) const DEV_PRIVATE_REMOTE: u8 = 0x30;
    /// Device coherent, this device.
    pub(crate) const DEV_COHERENT_LOCAL: u8 = 0x40;
    /// Device coherent, another device.
    pub(crate) const DEV_COHERENT_REMOTE: u8 = 0x50;
}

/// What a valid snapshot entry maps.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum PageKind {
    /// Device private page of this device (`true`) or another.
    DevicePrivate(bool),
    /// Device coherent page of this device (`true`) or another.
    DeviceCoherent(bool),
    /// The zero page.
    Zero,
    /// Any other page.
    Other,
}

/// One SNAPSHOT byte, as `dmirror_mkentry()`: `None` for an invalid entry.
pub(crate) fn snapshot_byte(
    error: bool,
    kind: Option<PageKind>,
    write: bool,
    map_order: u32,
    page_shift: u32,
    pmd_shift: u32,
    pud_shift: u32,
) -> u8 {
    if error {
        return prot::ERROR;
    }
    let Some(kind) = kind else {
        return prot::NONE;
    };
    let mut b = match kind {
        PageKind::DevicePrivate(true) => prot::DEV_PRIVATE_LOCAL,
        PageKind::DevicePrivate(false) => prot::DEV_PRIVATE_REMOTE,
        PageKind::DeviceCoherent(true) => prot::DEV_COHERENT_LOCAL,
        PageKind::DeviceCoherent(false) => prot::DEV_COHERENT_REMOTE,
        PageKind::Zero => prot::ZERO,
        PageKind::Other => prot::NONE,
    };
    b |= if write { prot::WRITE } else { prot::READ };
    if map_order + page_shift == pmd_shift {
        b |= prot::PMD;
    } else if map_order + page_shift == pud_shift {
        b |= prot::PUD;
    }
    b
}

#[kernel::macros::kunit_tests(hmm_dmirror_rs_uapi)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers() {
        assert_eq!(READ, 0xc0284800);
        assert_eq!(READ_UNLOCKED, 0xc0284809);
        assert_eq!(TEST_LOCK_PAGES, 0xc0284840);
    }

    #[test]
    fn snapshot_bytes() {
        assert_eq!(snapshot_byte(true, None, false, 0, 12, 21, 30), prot::ERROR);
        assert_eq!(snapshot_byte(false, None, true, 0, 12, 21, 30), prot::NONE);
        assert_eq!(
            snapshot_byte(false, Some(PageKind::Zero), false, 0, 12, 21, 30),
            0x11
        );
        assert_eq!(
            snapshot_byte(
                false,
                Some(PageKind::DevicePrivate(true)),
                true,
                0,
                12,
                21,
                30
            ),
            0x22
        );
        assert_eq!(
            snapshot_byte(
                false,
                Some(PageKind::DevicePrivate(false)),
                false,
                0,
                12,
                21,
                30
            ),
            0x31
        );
        assert_eq!(
            snapshot_byte(false, Some(PageKind::Other), true, 9, 12, 21, 30),
            0x06
        );
        assert_eq!(
            snapshot_byte(
                false,
                Some(PageKind::DeviceCoherent(true)),
                false,
                18,
                12,
                21,
                30
            ),
            0x49
        );
    }
}
