//! Pushing a 200 MiB image to a loopback CNCF distribution registry: hoist's registry
//! client against `skopeo copy` of the same OCI image layout. Every iteration pushes to a
//! new repository, so both send every blob. `benches/README.md` records the ratio.
//!
//! Needs `docker-registry` and `skopeo` (`scripts/install-deps.sh`).

// A failed setup step should stop the benchmark.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hoist_image::{digest_bytes, read_oci_layout};
use hoist_registry::{Client, ClientOptions, Credentials, ImageReference, TransportOptions};
use hoist_testkit::{ImageSource, Registry, RegistryAccess, skopeo_push};

const LAYERS: usize = 4;
const LAYER_SIZE: usize = 50 * 1024 * 1024;
const TAG: &str = "v1";

/// Bytes that gzip cannot shrink, like the compressed layers of a real image.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn write_blob(dir: &Path, bytes: &[u8]) -> String {
    let digest = digest_bytes(bytes).to_string();
    let name = digest.trim_start_matches("sha256:");
    std::fs::write(dir.join("blobs/sha256").join(name), bytes).unwrap();
    digest
}

/// Writes an OCI image layout containing one image of `LAYERS` layers tagged `TAG`.
fn write_layout(dir: &Path) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for index in 0..LAYERS {
        let bytes = noise(LAYER_SIZE, index as u64 + 1);
        let digest = write_blob(dir, &bytes);
        layers.push(format!(
            r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{digest}","size":{LAYER_SIZE}}}"#
        ));
        diff_ids.push(format!("\"{digest}\""));
    }
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        diff_ids.join(",")
    );
    let config_digest = write_blob(dir, config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{}]}}"#,
        config.len(),
        layers.join(",")
    );
    let manifest_digest = write_blob(dir, manifest.as_bytes());
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{manifest_digest}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"{TAG}"}}}}]}}"#,
        manifest.len()
    );
    std::fs::write(dir.join("index.json"), index).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

fn push_image(c: &mut Criterion) {
    let registry = Registry::builder().start().unwrap();
    let dir = tempfile::Builder::new()
        .prefix("hoist-bench-push-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let layout = dir.path().join("layout");
    write_layout(&layout);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut transport = TransportOptions::default();
    transport
        .insecure_registries
        .insert(registry.host().to_owned());
    let repositories = AtomicUsize::new(0);
    let next_destination = || {
        let number = repositories.fetch_add(1, Ordering::Relaxed);
        registry.reference(&format!("bench/push-{number}:{TAG}"))
    };

    let mut group = c.benchmark_group("push_200mib");
    group.sample_size(10);
    group.throughput(Throughput::Bytes((LAYERS * LAYER_SIZE) as u64));
    group.bench_function("skopeo_copy", |b| {
        let source = ImageSource::in_layout(&layout, TAG);
        let access = RegistryAccess::of(&registry);
        b.iter(|| skopeo_push(&source, &next_destination(), &access, &[]).unwrap());
    });
    group.bench_function("hoist", |b| {
        b.iter(|| {
            // Reading the layout verifies every blob, as `hoist-push` does before pushing.
            let image = read_oci_layout(&layout, Some(TAG)).unwrap();
            let destination: ImageReference = next_destination().parse().unwrap();
            let options = ClientOptions {
                transport: transport.clone(),
                ..ClientOptions::default()
            };
            let client = Client::new(options, Credentials::Anonymous);
            runtime
                .block_on(client.push(&image, &[destination], &BTreeMap::new()))
                .unwrap()
        });
    });
    group.finish();
}

criterion_group!(benches, push_image);
criterion_main!(benches);
