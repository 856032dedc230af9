// SPDX-License-Identifier: GPL-2.0

//! The abstraction layer: safe Rust APIs over the mm interfaces a device
//! memory driver uses, shaped as the would-be `kernel::mm::*` modules.
//!
//! Every `unsafe` of the crate that wraps C lives here (the driver layer,
//! [`crate::driver`], is built with `#![deny(unsafe_code)]` apart from the
//! places tagged in `docs/todo.md`). Nothing here names the driver: the
//! dependency is one-way, `driver` -> `mm` -> `kernel`.
//!
//! The modules, their would-be upstream paths and C headers:
//! - [`folio`], `kernel::mm::folio` (with `kernel::page`),
//!   [`include/linux/mm.h`](srctree/include/linux/mm.h);
//! - [`memremap`], `kernel::mm::memremap`,
//!   [`include/linux/memremap.h`](srctree/include/linux/memremap.h);
//! - [`migrate`], `kernel::mm::migrate`,
//!   [`include/linux/migrate.h`](srctree/include/linux/migrate.h);
//! - [`hmm`], `kernel::mm::hmm`, [`include/linux/hmm.h`](srctree/include/linux/hmm.h);
//! - [`exclusive`], part of `kernel::mm::hmm`,
//!   [`include/linux/rmap.h`](srctree/include/linux/rmap.h);
//! - [`pool`], the free pages of a device's maps, next to `drm_pagemap`'s
//!   allocator, [`include/linux/memremap.h`](srctree/include/linux/memremap.h);
//! - [`mmap`], until `kernel::mm::MmapReadGuard` has `mm()`,
//!   [`include/linux/mmap_lock.h`](srctree/include/linux/mmap_lock.h);
//! - [`mmu_notifier`], `kernel::mm::mmu_notifier`,
//!   [`include/linux/mmu_notifier.h`](srctree/include/linux/mmu_notifier.h);
//! - [`xarray`], tagged non-owning entries for `kernel::xarray`,
//!   [`include/linux/xarray.h`](srctree/include/linux/xarray.h);
//! - [`bindings`], `kernel::bindings` and `rust/helpers/mm.c`, generated from
//!   `bindings_helper.h` and `helpers.h`.

#![allow(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub(crate) mod bindings;
pub(crate) mod exclusive;
pub(crate) mod folio;
pub(crate) mod hmm;
pub(crate) mod memremap;
pub(crate) mod migrate;
pub(crate) mod mmap;
pub(crate) mod mmu_notifier;
pub(crate) mod pool;
pub(crate) mod xarray;

/// Reads what the layer caches from boot-time kernel state (the memmap base of
/// [`folio::memmap`]); called once at module init. Everything works without
/// it, through C calls.
pub(crate) fn init() {
    folio::memmap::init();
}
