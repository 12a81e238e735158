//! Criterion benchmarks of hoist's hot path; see `benches/README.md`.
