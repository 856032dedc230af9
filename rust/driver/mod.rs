// SPDX-License-Identifier: GPL-2.0

//! The driver layer: the dmirror device on top of [`crate::mm`].
//!
//! Module dependencies go one way, top to bottom (no module imports one
//! above it):
//!
//! - [`callbacks`], the `dev_pagemap_ops` of a chunk; uses `mirror`, `devmem`, `owner`;
//! - [`mirror`], the per-open mirror, its notifier, the ioctls; uses `devmem`, `table`,
//!   `owner`, `uapi`;
//! - [`devmem`], chunks, free lists, device page allocation, eviction; uses `uapi`;
//! - [`table`], the mirror's page table;
//! - [`owner`], the counted owner reference of a device page;
//! - [`uapi`], `lib/test_hmm_uapi.h`.
//!
//! The driver layer is built with `#![deny(unsafe_code)]`; the places that
//! still need `unsafe` allow it item by item or file by file and carry a
//! `TODO[TAG]` of `docs/todo.md`, which names the missing kernel abstraction.

#![deny(unsafe_code)]

pub(crate) mod callbacks;
pub(crate) mod devmem;
pub(crate) mod mirror;
pub(crate) mod owner;
pub(crate) mod table;
pub(crate) mod uapi;
