// SPDX-License-Identifier: GPL-2.0

//! The driver layer: the dmirror device on top of [`crate::mm`].
//!
//! Module dependencies go one way, top to bottom (no module imports one
//! above it):
//!
//! | module | owns | uses |
//! |---|---|---|
//! | [`callbacks`] | the `dev_pagemap_ops` of a chunk | `mirror`, `devmem`, `owner` |
//! | [`mirror`] | the per-open mirror, its notifier, the ioctls | `devmem`, `table`, `owner`, `uapi` |
//! | [`devmem`] | chunks, free lists, device page allocation, eviction | `uapi` |
//! | [`table`] | the mirror's page table | |
//! | [`owner`] | the counted owner reference of a device page | |
//! | [`uapi`] | `lib/test_hmm_uapi.h` | |

#![deny(unsafe_code)]

pub(crate) mod callbacks;
pub(crate) mod devmem;
pub(crate) mod mirror;
pub(crate) mod owner;
pub(crate) mod table;
pub(crate) mod uapi;
