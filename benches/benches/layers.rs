//! Layer writing against its parts: tar encoding alone, SHA-256 over the
//! tar stream, and each compressor on its own, all on one generated corpus.
//! `benches/README.md` compares the layer writer with its compressor.

// A failed setup step should stop the benchmark.
#![allow(clippy::unwrap_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gzp::ZWriter as _;
use hoist_snapshot::{ChangeSet, Compression, LayerOptions, write_layer};
use sha2::{Digest, Sha256};
use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::path::PathBuf;

const FILES: usize = 64;
const FILE_SIZE: usize = 256 * 1024;

/// Text-like bytes from a fixed seed: words from a small vocabulary, which
/// compress about as well as source code and binaries mixed.
fn corpus(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&[u8]; 16] = [
        b"the ",
        b"layer ",
        b"\x00\x01\x02",
        b"snapshot ",
        b"ELF",
        b"fn ",
        b"0x7f",
        b"\n",
        b"return ",
        b"{ ",
        b"} ",
        b"usr/lib/",
        b"=",
        b"\t",
        b"hoist ",
        b"data ",
    ];
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let word = WORDS[(state >> 60) as usize];
        out.extend_from_slice(word);
        if state & 0x300 == 0 {
            out.push((state >> 20) as u8);
        }
    }
    out.truncate(len);
    out
}

struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
    changes: ChangeSet,
    bytes: u64,
}

fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let mut changes = ChangeSet::default();
    for i in 0..FILES {
        let name = PathBuf::from(format!("data/file-{i:03}"));
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::fs::write(root.join(&name), corpus(FILE_SIZE, i as u64)).unwrap();
        changes.added.push(name);
    }
    Tree {
        _dir: dir,
        root,
        changes,
        bytes: (FILES * FILE_SIZE) as u64,
    }
}

fn two() -> NonZeroUsize {
    NonZeroUsize::new(2).unwrap()
}

fn compressions() -> Vec<(&'static str, Compression)> {
    vec![
        ("gzip-1", Compression::Gzip { level: 1 }),
        ("gzip-6", Compression::Gzip { level: 6 }),
        (
            "pgzip-1-2threads",
            Compression::ParallelGzip {
                level: 1,
                threads: two(),
            },
        ),
        (
            "pgzip-6-2threads",
            Compression::ParallelGzip {
                level: 6,
                threads: two(),
            },
        ),
        (
            "zstd-3-1worker",
            Compression::Zstd {
                level: 3,
                workers: NonZeroUsize::MIN,
            },
        ),
        (
            "zstd-3-2workers",
            Compression::Zstd {
                level: 3,
                workers: two(),
            },
        ),
    ]
}

/// Compresses `data` with the compressor alone and returns the output size.
fn compress_only(compression: Compression, data: &[u8]) -> u64 {
    let mut sink = CountingSink(0);
    match compression {
        Compression::None => sink.write_all(data).unwrap(),
        Compression::Gzip { level } => {
            let mut e = flate2::write::GzEncoder::new(&mut sink, flate2::Compression::new(level));
            e.write_all(data).unwrap();
            e.finish().unwrap();
        }
        Compression::ParallelGzip { level, threads } => std::thread::scope(|scope| {
            let mut e = gzp::par::compress::ParCompressBuilder::<gzp::deflate::Gzip>::new()
                .compression_level(gzp::Compression::new(level))
                .buffer_size(128 * 1024)
                .unwrap()
                .num_threads(threads.get())
                .unwrap()
                .from_borrowed_writer(&mut sink, scope);
            e.write_all(data).unwrap();
            e.finish().unwrap();
        }),
        Compression::Zstd { level, workers } => {
            let mut e = zstd::stream::write::Encoder::new(&mut sink, level).unwrap();
            e.multithread(workers.get() as u32).unwrap();
            e.write_all(data).unwrap();
            e.finish().unwrap();
        }
    }
    sink.0
}

struct CountingSink(u64);

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn layer(tree: &Tree, compression: Compression) -> u64 {
    let options = LayerOptions {
        compression,
        mtime_epoch: None,
    };
    write_layer(&tree.root, &tree.changes, &options, &mut CountingSink(0))
        .unwrap()
        .size
}

fn tar_stream(tree: &Tree) -> Vec<u8> {
    let options = LayerOptions {
        compression: Compression::None,
        mtime_epoch: None,
    };
    let mut out = Vec::new();
    write_layer(&tree.root, &tree.changes, &options, &mut out).unwrap();
    out
}

fn tar_and_hash(c: &mut Criterion) {
    let tree = tree();
    let stream = tar_stream(&tree);
    let mut group = c.benchmark_group("tar");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(tree.bytes));
    group.bench_function("encode-into-sink", |b| {
        b.iter(|| layer(&tree, Compression::None));
    });
    group.bench_function("sha256-of-stream", |b| b.iter(|| Sha256::digest(&stream)));
    group.finish();
}

fn compressors(c: &mut Criterion) {
    let tree = tree();
    let stream = tar_stream(&tree);
    let mut group = c.benchmark_group("compress");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(tree.bytes));
    for (name, compression) in compressions() {
        group.bench_with_input(
            BenchmarkId::new("compressor-alone", name),
            &compression,
            |b, c| {
                b.iter(|| compress_only(*c, &stream));
            },
        );
        group.bench_with_input(
            BenchmarkId::new("layer-writer", name),
            &compression,
            |b, c| {
                b.iter(|| layer(&tree, *c));
            },
        );
    }
    group.finish();
}

criterion_group!(benches, tar_and_hash, compressors);
criterion_main!(benches);
