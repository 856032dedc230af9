// SPDX-License-Identifier: GPL-2.0

//! HMM (Heterogeneous Memory Management) test module: a Rust port of
//! `lib/test_hmm.c` ("dmirror"), ABI-compatible with it.
//!
//! This file owns the module: its parameters, the four devices
//! (`/dev/hmm_dmirror0..3`: 0 and 1 DEVICE_PRIVATE, 2 and 3 DEVICE_COHERENT
//! when both `spm_addr_dev0` and `spm_addr_dev1` are set), their misc device
//! registrations and the file operations (open, release, mmap, ioctl
//! dispatch with the common argument checks).

#![deny(unsafe_code)]

use kernel::{
    fs::File,
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    mm::virt::VmaNew,
    page::{Page, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE},
    prelude::*,
    uaccess::{UserPtr, UserSlice},
};

mod driver;
mod mm;

use driver::{
    devmem::DmirrorDevice,
    mirror::DmirrorFile,
    uapi::{self, HmmDmirrorCmd, MemoryType},
};

module! {
    type: DmirrorModule,
    name: "hmm_dmirror_rs",
    authors: ["hmm-dmirror-rs"],
    description: "HMM (Heterogeneous Memory Management) test module (Rust port of test_hmm)",
    license: "GPL",
    params: {
        spm_addr_dev0: u64 {
            default: 0,
            description: "Specify start address for SPM (special purpose memory) used for device 0. By setting this Coherent device type will be used. Make sure spm_addr_dev1 is set too. Minimum SPM size should be DEVMEM_CHUNK_SIZE.",
        },
        test_hooks: bool {
            default: false,
            description: "PROJECT-ONLY, not in lib/test_hmm.c: enable the TEST_LOCK_PAGES/TEST_UNLOCK_PAGES/TEST_EXCLUSIVE_DELAY ioctls (0x40, 0x41, 0x43).",
        },
        spm_addr_dev1: u64 {
            default: 0,
            description: "Specify start address for SPM (special purpose memory) used for device 1. By setting this Coherent device type will be used. Make sure spm_addr_dev0 is set too. Minimum SPM size should be DEVMEM_CHUNK_SIZE.",
        },
    },
}

/// `DMIRROR_NDEVICES`.
const NDEVICES: usize = 4;

/// One `/dev/hmm_dmirrorN`: the device and its misc registration.
///
/// Field order matters: the misc device is deregistered before the device
/// memory is evicted and unmapped, as `cdev_device_del()` before the
/// device release in the C driver.
#[pin_data]
struct DeviceNode {
    #[pin]
    misc: MiscDeviceRegistration<DmirrorFile>,
    device: Pin<KBox<DmirrorDevice>>,
}

impl DeviceNode {
    fn new(id: u32, mtype: MemoryType) -> Result<Pin<KBox<Self>>> {
        // Quirk kept from the C driver: minor 2 uses spm_addr_dev1, minor 3 spm_addr_dev0.
        let spm = match id {
            2 => module_parameters::spm_addr_dev1.value(),
            3 => module_parameters::spm_addr_dev0.value(),
            _ => 0,
        };
        let device = KBox::pin_init(DmirrorDevice::new(mtype, spm), GFP_KERNEL)?;
        // Build a list of free ZONE_DEVICE struct pages before the node appears.
        device.allocate_chunk(None)?;
        let name = match id {
            0 => c"hmm_dmirror0",
            1 => c"hmm_dmirror1",
            2 => c"hmm_dmirror2",
            _ => c"hmm_dmirror3",
        };
        KBox::try_pin_init(
            try_pin_init!(Self {
                misc <- MiscDeviceRegistration::register(MiscDeviceOptions { name }),
                device,
            }),
            GFP_KERNEL,
        )
    }
}

struct DmirrorModule {
    _nodes: KVec<Pin<KBox<DeviceNode>>>,
}

impl kernel::Module for DmirrorModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        mm::init();
        let mut types = [
            Some(MemoryType::Private),
            Some(MemoryType::Private),
            None,
            None,
        ];
        if module_parameters::spm_addr_dev0.value() != 0
            && module_parameters::spm_addr_dev1.value() != 0
        {
            types[2] = Some(MemoryType::Coherent);
            types[3] = Some(MemoryType::Coherent);
        }
        let mut nodes = KVec::with_capacity(NDEVICES, GFP_KERNEL)?;
        for (id, t) in types.iter().enumerate() {
            if let Some(t) = *t {
                // On failure `nodes` is dropped, removing the devices made so far.
                nodes.push(DeviceNode::new(id as u32, t)?, GFP_KERNEL)?;
            }
        }
        pr_info!("HMM test module loaded. This is only for testing HMM.\n");
        Ok(Self { _nodes: nodes })
    }
}

#[vtable]
impl MiscDevice for DmirrorFile {
    type Ptr = Pin<KBox<Self>>;

    fn open(_file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<Self::Ptr> {
        let misc: *const MiscDeviceRegistration<Self> = misc;
        // TODO[MISCDATA]: `MiscDeviceRegistration` has no driver data.
        // SAFETY: Every `MiscDeviceRegistration<DmirrorFile>` is the `misc` field of a
        // pinned `DeviceNode` (only `DeviceNode::new` registers one), alive while the
        // registration is.
        #[allow(unsafe_code)]
        let node = unsafe { &*kernel::container_of!(misc, DeviceNode, misc) };
        let task = kernel::current!();
        let mm = task.mm().ok_or(EINVAL)?;
        KBox::try_pin_init(DmirrorFile::new(&node.device, mm), GFP_KERNEL)
    }

    fn release(mut this: Self::Ptr, _file: &File) {
        // Remove the notifier, then evict every chunk of the device back to system memory
        // (as the C driver does since the CVE-2026-46280 fix). A page the eviction could
        // not lock stays on the device and keeps a reference to the mirror (`owner`): the
        // mirror and its table are freed with the last of them, or when `this` drops.
        this.as_mut().release();
    }

    fn mmap(_me: Pin<&DmirrorFile>, _file: &File, vma: &VmaNew) -> Result {
        let mixed = vma.set_mixedmap();
        let mut addr = vma.start();
        while addr < vma.end() {
            let page = Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?;
            mixed.vm_insert_page(addr, &page)?;
            // `vm_insert_page` took its own reference; drop ours.
            drop(page);
            addr += PAGE_SIZE;
        }
        Ok(())
    }

    fn ioctl(me: Pin<&DmirrorFile>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        let uarg = UserPtr::from_addr(arg);
        let size = core::mem::size_of::<HmmDmirrorCmd>();
        let mut c: HmmDmirrorCmd = UserSlice::new(uarg, size)
            .reader()
            .read()
            .map_err(|_| EFAULT)?;
        if c.addr & !(PAGE_MASK as u64) != 0 {
            return Err(EINVAL);
        }
        if c.addr >= c.addr.wrapping_add(c.npages << PAGE_SHIFT) {
            return Err(EINVAL);
        }
        c.cpages = 0;
        c.faults = 0;

        let m = me.mirror();
        match cmd {
            uapi::READ => me.read(&mut c, None)?,
            uapi::WRITE => me.write(&mut c)?,
            uapi::MIGRATE_TO_DEV => me.migrate_to_device(&mut c)?,
            uapi::MIGRATE_TO_SYS => me.migrate_to_system(&mut c)?,
            uapi::EXCLUSIVE => me.exclusive(&mut c)?,
            uapi::CHECK_EXCLUSIVE => {
                let start = c.addr as usize;
                m.check_atomic(start, start.wrapping_add((c.npages as usize) << PAGE_SHIFT))?
            }
            uapi::SNAPSHOT => me.snapshot(&mut c)?,
            uapi::RELEASE => m.device().remove_chunks(),
            uapi::FLAGS => m.set_flags(c.npages),
            uapi::READ_UNLOCKED => me.read(&mut c, Some(0))?,
            // PROJECT-ONLY test hooks, outside the upstream ABI, off unless `test_hooks=1`.
            uapi::TEST_LOCK_PAGES if module_parameters::test_hooks.value() => {
                m.test_lock_pages(&mut c)?
            }
            uapi::TEST_UNLOCK_PAGES if module_parameters::test_hooks.value() => {
                m.test_unlock_pages(&mut c)
            }
            uapi::TEST_EXCLUSIVE_DELAY if module_parameters::test_hooks.value() => {
                m.test_exclusive_delay(&mut c)
            }
            _ => return Err(EINVAL),
        }

        UserSlice::new(uarg, size)
            .writer()
            .write(&c)
            .map_err(|_| EFAULT)?;
        Ok(0)
    }
}
