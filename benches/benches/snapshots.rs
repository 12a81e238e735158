//! Snapshot cost of one build step that adds, deletes and modifies one file
//! each on a generated tree of 100,000 small files, with the walk and the
//! overlay snapshotter. The overlay bench mounts, so it needs root.

// A failed setup step should stop the benchmark.
#![allow(clippy::unwrap_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hoist_snapshot::{
    Compression, LayerOptions, OverlaySnapshotter, Snapshotter, WalkOptions, WalkSnapshotter,
    write_layer,
};
use std::path::Path;

const DIRS: usize = 1_000;
const FILES_PER_DIR: usize = 100;

fn small_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for d in 0..DIRS {
        let sub = dir.path().join(format!("d{d:04}"));
        std::fs::create_dir(&sub).unwrap();
        for f in 0..FILES_PER_DIR {
            std::fs::write(sub.join(format!("f{f:03}")), format!("file {d} {f}\n")).unwrap();
        }
    }
    dir
}

/// Adds a file, deletes a file and modifies a file, as one build step.
/// `round` keeps the steps distinct so that each makes the same three changes.
fn step(root: &Path, round: usize) {
    std::fs::write(root.join(format!("d0000/new-{round}")), "added\n").unwrap();
    let victim = root.join(format!("d0001/f{:03}", round % FILES_PER_DIR));
    if victim.exists() {
        std::fs::remove_file(victim).unwrap();
    }
    std::fs::write(root.join("d0002/f000"), format!("modified {round}\n")).unwrap();
}

fn layer_options() -> LayerOptions {
    LayerOptions {
        compression: Compression::Gzip { level: 6 },
        mtime_epoch: None,
    }
}

/// Walks the tree with `walkdir` and one `lstat` per entry: the floor of any
/// stat walk, and the baseline of the walk snapshotter.
fn lstat_walk(root: &Path) -> u64 {
    let mut bytes = 0;
    for entry in walkdir::WalkDir::new(root) {
        bytes += entry.unwrap().path().symlink_metadata().unwrap().len();
    }
    bytes
}

fn walk(c: &mut Criterion) {
    let tree = small_tree();
    let mut snapshotter = WalkSnapshotter::new(tree.path().to_path_buf(), WalkOptions::default());
    let mut group = c.benchmark_group("snapshot-step");
    group.sample_size(10);
    group.throughput(Throughput::Elements((DIRS * FILES_PER_DIR) as u64));
    group.bench_function("baseline-walkdir-lstat-100k-files", |b| {
        b.iter(|| lstat_walk(tree.path()));
    });
    let mut round = 0;
    // begin_step reuses the walk of the previous end_step, so one iteration
    // costs one walk, as in a build with many steps.
    snapshotter.begin_step().unwrap();
    snapshotter.end_step().unwrap();
    group.bench_function("walk-100k-files", |b| {
        b.iter(|| {
            round += 1;
            let root = snapshotter.begin_step().unwrap();
            step(&root, round);
            let changes = snapshotter.end_step().unwrap();
            write_layer(
                snapshotter.layer_source(),
                &changes,
                &layer_options(),
                &mut Vec::new(),
            )
            .unwrap()
        });
    });
    group.finish();
}

fn overlay(c: &mut Criterion) {
    let tree = small_tree();
    let scratch = tempfile::tempdir().unwrap();
    let mut snapshotter = OverlaySnapshotter::new(tree.path().to_path_buf(), scratch.path());
    let mut group = c.benchmark_group("snapshot-step");
    group.sample_size(10);
    group.throughput(Throughput::Elements((DIRS * FILES_PER_DIR) as u64));
    let mut round = 0;
    group.bench_function("overlay-100k-files", |b| {
        b.iter(|| {
            round += 1;
            let root = snapshotter.begin_step().unwrap();
            step(&root, round);
            let changes = snapshotter.end_step().unwrap();
            write_layer(
                snapshotter.layer_source(),
                &changes,
                &layer_options(),
                &mut Vec::new(),
            )
            .unwrap()
        });
    });
    group.finish();
}

criterion_group!(benches, walk, overlay);
criterion_main!(benches);
