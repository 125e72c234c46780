//! Plain timing of the table builders (no Python): `cargo bench -p salibi-core`.
//! The Python-side comparison against numpy and the authors' approach lives in
//! tests/benchmarks/bias_tables.py.

use std::time::Instant;

use salibi_core::{cache, table, PatchGrid};

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> f64 {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(f());
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let coarse = PatchGrid::new(32, 32, 16, 2.0, (0.0, 0.0)).unwrap();
    let fine = PatchGrid::new(64, 64, 16, 1.0, (0.0, 0.0)).unwrap();
    let bytes = 16.0 * 1024.0 * 4096.0 * 4.0;

    let fresh = best_of(5, || table::scale_alibi_bias(&coarse, &fine, 16, None).unwrap());
    println!("fresh 16x1024x4096 bias:   {:8.2} ms  ({:.1} GB/s written)", fresh * 1e3, bytes / fresh / 1e9);

    cache::scale_alibi_bias(&coarse, &fine, 16, None).unwrap();
    let cached = best_of(100, || cache::scale_alibi_bias(&coarse, &fine, 16, None).unwrap());
    println!("cached repeat:             {:8.4} ms  ({:.0}x faster)", cached * 1e3, fresh / cached);

    let distance = best_of(5, || table::ground_distance_table(&coarse, &fine, None).unwrap());
    println!("fresh 1024x4096 distances: {:8.2} ms", distance * 1e3);
}
