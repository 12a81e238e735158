//! Filesystem layers for hoist.
//!
//! This crate extracts image layers into a root directory, records what a
//! build step changed there, and writes those changes as a compressed layer.
//! It does no network I/O.
//!
//! ```no_run
//! use hoist_snapshot::{Compression, LayerOptions, Snapshotter, WalkSnapshotter, write_layer};
//! use std::num::NonZeroUsize;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut snapshotter = WalkSnapshotter::new("/var/tmp/hoist-root".into(), Default::default());
//! let root = snapshotter.begin_step()?;
//! std::fs::write(root.join("hello.txt"), "hello")?;
//! let changes = snapshotter.end_step()?;
//! let options = LayerOptions {
//!     compression: Compression::Zstd { level: 3, workers: NonZeroUsize::MIN },
//!     mtime_epoch: None,
//! };
//! let mut blob = Vec::new();
//! let digests = write_layer(snapshotter.layer_source(), &changes, &options, &mut blob)?;
//! println!("{} {}", digests.digest, digests.diff_id);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod apply;
mod changes;
mod compression;
mod digest;
mod error;
mod metadata;
mod overlay;
mod tar_encode;
mod walk;
mod writer;

pub use apply::{ApplyOptions, ApplyReport, apply_layer};
pub use changes::{ChangeSet, Snapshotter};
pub use compression::{Compression, StreamFormat, decompress, detect_format};
pub use digest::Sha256Digest;
pub use error::{ApplyError, SnapshotError, WriteError};
pub use overlay::OverlaySnapshotter;
pub use tar_encode::Timestamp;
pub use walk::{WalkOptions, WalkSnapshotter};
pub use writer::{LayerDigests, LayerOptions, OPAQUE_MARKER, WHITEOUT_PREFIX, write_layer};
