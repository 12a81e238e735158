//! Progress bars on a terminal, one per blob, with `indicatif`.

use std::collections::HashMap;
use std::sync::Mutex;

use hoist_registry::{Direction, Progress};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// The bar layout: short digest, bytes done and total, rate.
const TEMPLATE: &str = "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}";

/// Per-blob progress bars drawn on standard error.
#[derive(Debug, Default)]
pub(crate) struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Progress for Bars {
    fn start(&self, digest: &str, size: u64, direction: Direction) {
        let bar = self.multi.add(ProgressBar::new(size));
        if let Ok(style) = ProgressStyle::with_template(TEMPLATE) {
            bar.set_style(style.progress_chars("=> "));
        }
        let verb = match direction {
            Direction::Pull => "pull",
            Direction::Push => "push",
        };
        let short = digest
            .trim_start_matches("sha256:")
            .get(..12)
            .unwrap_or(digest);
        bar.set_prefix(format!("{verb} {short}"));
        let previous = self.lock().insert(digest.to_owned(), bar);
        if let Some(previous) = previous {
            previous.finish_and_clear();
        }
    }

    fn advance(&self, digest: &str, bytes: u64) {
        if let Some(bar) = self.lock().get(digest) {
            bar.inc(bytes);
        }
    }

    fn finish(&self, digest: &str, success: bool) {
        if let Some(bar) = self.lock().remove(digest) {
            if success {
                bar.finish();
            } else {
                bar.abandon();
            }
        }
    }
}

impl Bars {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ProgressBar>> {
        self.bars
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
