// SPDX-License-Identifier: GPL-2.0

//! Raw bindings the `kernel` crate does not provide.
//!
//! Owns nothing but the generated declarations: `struct migrate_vma`,
//! `struct hmm_range`, `MIGRATE_PFN_*`, `HMM_PFN_*`, the migrate/hmm/rmap
//! functions, a few macro constants, and the C shims of `helpers.c`. The file is
//! generated at build time by bindgen from `bindings_helper.h` (see `Kbuild`); all
//! other types are re-exported from `kernel::bindings`.

#![allow(
    clippy::all,
    dead_code,
    missing_docs,
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    improper_ctypes,
    unreachable_pub,
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks
)]

include!(env!("DMIRROR_BINDINGS_RS"));
