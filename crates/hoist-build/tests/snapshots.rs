//! Snapshot settings: the overlay and walk snapshotters, Kaniko's snapshot
//! modes and `--single-snapshot`, compared by layer count, history, layer
//! entries and the unpacked image.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use hoist_build::snapshot::{SnapshotBackend, SnapshotMode, SnapshotSettings};
use hoist_build::stage::BuildOutput;
use hoist_testkit::{ImageSource, compare_rootfs, unpack_image};
use support::{build_with, history_after, settings, source, temporary_dir, write_layout};

const DOCKERFILE: &str = "\
FROM busybox
RUN mkdir -p /app/data && echo one > /app/data/one && echo keep > /app/data/keep
ENV STEP=two
WORKDIR /app/work
RUN echo two > /app/data/two && rm /app/data/one && chmod 700 /app/data
RUN true
RUN rm -rf /app/data && mkdir /app/data && echo three > /app/data/three
CMD [\"sh\"]
";

/// The busybox base has one layer and one history entry.
const BASE_LAYERS: usize = 1;

fn build_with_snapshot(work: &Path, snapshot: SnapshotSettings) -> BuildOutput {
    let mut settings = settings(work, None);
    settings.snapshot = snapshot;
    build_with(DOCKERFILE, &settings, &source(&[])).expect("build")
}

fn snapshot(backend: SnapshotBackend, mode: SnapshotMode, single: bool) -> SnapshotSettings {
    SnapshotSettings {
        mode,
        single,
        backend,
    }
}

/// Lists the entries of each layer that the build added, as `tar -t`
/// prints them.
fn new_layer_entries(output: &BuildOutput) -> Vec<Vec<String>> {
    output.image.layers()[BASE_LAYERS..]
        .iter()
        .map(|layer| {
            let listed = Command::new("tar")
                .arg("-tzf")
                .arg(layer.blob.path())
                .output()
                .expect("run tar");
            assert!(listed.status.success(), "tar -t {:?}", layer.blob.path());
            let mut entries: Vec<String> = String::from_utf8_lossy(&listed.stdout)
                .lines()
                .map(|line| line.trim_end_matches('/').to_owned())
                .collect();
            entries.sort();
            entries
        })
        .collect()
}

fn without_whiteouts(layers: &[Vec<String>]) -> Vec<Vec<String>> {
    layers
        .iter()
        .map(|entries| {
            entries
                .iter()
                .filter(|entry| !entry.rsplit('/').next().unwrap_or("").starts_with(".wh."))
                .cloned()
                .collect()
        })
        .collect()
}

/// Writes `output` as an OCI layout under `work` and unpacks it with umoci.
fn unpack(output: &BuildOutput, work: &Path, name: &str) -> PathBuf {
    let layout = work.join(format!("{name}-layout"));
    write_layout(output, &layout);
    let rootfs = work.join(format!("{name}-rootfs"));
    let source = ImageSource::Layout {
        dir: layout,
        tag: "latest".into(),
    };
    unpack_image(&source, &rootfs).expect("umoci unpack");
    rootfs
}

fn assert_same_rootfs(left: &BuildOutput, right: &BuildOutput, work: &Path) {
    let left = unpack(left, work, "left");
    let right = unpack(right, work, "right");
    let differences = compare_rootfs(&left, &right).expect("compare");
    assert!(differences.is_empty(), "{differences}");
}

#[test]
fn overlay_and_walk_layers_match() {
    let work = temporary_dir();
    let overlay = build_with_snapshot(
        work.path(),
        snapshot(SnapshotBackend::Overlay, SnapshotMode::Full, false),
    );
    let walk = build_with_snapshot(
        work.path(),
        snapshot(SnapshotBackend::Walk, SnapshotMode::Full, false),
    );

    // WORKDIR and three of the four RUNs change files.
    assert_eq!(overlay.image.layers().len(), BASE_LAYERS + 4);
    assert_eq!(walk.image.layers().len(), BASE_LAYERS + 4);
    assert_eq!(
        history_after(&overlay, BASE_LAYERS),
        history_after(&walk, BASE_LAYERS)
    );
    let overlay_entries = new_layer_entries(&overlay);
    let walk_entries = new_layer_entries(&walk);
    assert_eq!(overlay_entries[..3], walk_entries[..3]);
    assert_eq!(
        without_whiteouts(&overlay_entries),
        without_whiteouts(&walk_entries)
    );
    // A directory removed and created again: the overlay marks it opaque,
    // the walk whites out each earlier entry. Both unpack the same.
    assert!(overlay_entries[3].contains(&"app/data/.wh..wh..opq".to_owned()));
    assert!(walk_entries[3].contains(&"app/data/.wh.keep".to_owned()));
    assert!(walk_entries[3].contains(&"app/data/.wh.two".to_owned()));
    assert_same_rootfs(&overlay, &walk, work.path());
}

#[test]
fn redo_and_time_match_full() {
    let work = temporary_dir();
    let full = build_with_snapshot(
        work.path(),
        snapshot(SnapshotBackend::Walk, SnapshotMode::Full, false),
    );
    for mode in [SnapshotMode::Redo, SnapshotMode::Time] {
        let other = build_with_snapshot(work.path(), snapshot(SnapshotBackend::Walk, mode, false));
        assert_eq!(
            other.image.layers().len(),
            full.image.layers().len(),
            "{mode:?}"
        );
        assert_eq!(
            new_layer_entries(&other),
            new_layer_entries(&full),
            "{mode:?}"
        );
    }
}

#[test]
fn single_snapshot_makes_one_layer() {
    for backend in [SnapshotBackend::Walk, SnapshotBackend::Overlay] {
        let work = temporary_dir();
        let single = build_with_snapshot(work.path(), snapshot(backend, SnapshotMode::Full, true));
        let per_step =
            build_with_snapshot(work.path(), snapshot(backend, SnapshotMode::Full, false));

        assert_eq!(single.image.layers().len(), BASE_LAYERS + 1, "{backend:?}");
        let history = history_after(&single, BASE_LAYERS);
        let created_by: Vec<&str> = history.iter().map(|(text, _)| text.as_str()).collect();
        let per_step_history = history_after(&per_step, BASE_LAYERS);
        let per_step_created_by: Vec<&str> = per_step_history
            .iter()
            .map(|(text, _)| text.as_str())
            .collect();
        assert_eq!(created_by, per_step_created_by, "{backend:?}");
        let with_layer: Vec<&str> = history
            .iter()
            .filter(|(_, empty)| !empty)
            .map(|(text, _)| text.as_str())
            .collect();
        assert_eq!(
            with_layer,
            [
                "RUN /bin/sh -c rm -rf /app/data && mkdir /app/data && echo three > /app/data/three # buildkit"
            ],
            "{backend:?}: the last RUN gets the layer"
        );
        assert_same_rootfs(&single, &per_step, work.path());
    }
}

#[test]
fn single_snapshot_without_changes_adds_none() {
    let work = temporary_dir();
    let mut settings = settings(work.path(), None);
    settings.snapshot = snapshot(SnapshotBackend::Walk, SnapshotMode::Full, true);
    let output =
        build_with("FROM busybox\nRUN true\nENV A=1\n", &settings, &source(&[])).expect("build");
    assert_eq!(output.image.layers().len(), BASE_LAYERS);
    let history = history_after(&output, BASE_LAYERS);
    assert_eq!(history.len(), 2);
    assert!(history.iter().all(|(_, empty)| *empty), "{history:?}");
}
