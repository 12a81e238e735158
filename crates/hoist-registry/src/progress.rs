//! Progress events of blob transfers, for progress bars in front ends.

/// The direction of a blob transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// A download into the blob cache.
    Pull,
    /// An upload to a registry.
    Push,
}

/// A receiver of progress events of blob transfers, called from several tasks at once.
///
/// Blobs that are already present (in the cache or the registry) get no events. A retried
/// transfer starts again with another [`Progress::start`].
pub trait Progress: Send + Sync + std::fmt::Debug {
    /// Reports that a transfer of `size` bytes of blob `digest` starts.
    fn start(&self, digest: &str, size: u64, direction: Direction);
    /// Reports that `bytes` more bytes of blob `digest` were sent or received.
    fn advance(&self, digest: &str, bytes: u64);
    /// Reports that the transfer of blob `digest` ended, successfully or not.
    fn finish(&self, digest: &str, success: bool);
}
