//! SHA-256 throughput: the cost every layer and blob digest pays.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sha2::{Digest, Sha256};
use std::hint::black_box;

fn sha256(c: &mut Criterion) {
    let data = vec![0x5a_u8; 8 << 20];
    let mut group = c.benchmark_group("sha256");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("8MiB", |b| b.iter(|| Sha256::digest(black_box(&data))));
    group.finish();
}

criterion_group!(benches, sha256);
criterion_main!(benches);
