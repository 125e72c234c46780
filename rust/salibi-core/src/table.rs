//! Ground-distance and Scale-ALiBi bias tables between two patch grids.
//!
//! `bias_h(a, b) = -m_h * ||centre_a - centre_b||_2 / L` for query patch `a` and key patch
//! `b`. A table depends only on geometry, so it is built once and cached (see `cache`).

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::buffer::{AlignedBuffer, UninitBuffer};
use crate::error::{require_count, CoreError, Result};
use crate::grid::{resolve_ref_length, PatchGrid};
use crate::size::{vec_with_capacity, Size};
use crate::slopes::alibi_slopes;

/// A dense row-major float32 table with its shape.
pub struct Table {
    shape: Vec<usize>,
    data: AlignedBuffer,
}

impl Table {
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn as_slice(&self) -> &[f32] {
        self.data.as_slice()
    }

    /// The first element, as the buffer's own allocation pointer (see [`AlignedBuffer::as_ptr`]).
    pub fn as_ptr(&self) -> *const f32 {
        self.data.as_ptr()
    }

    pub fn nbytes(&self) -> usize {
        self.data.nbytes()
    }

    /// Element at a multi-index (tests and small lookups; not for hot loops).
    pub fn at(&self, index: &[usize]) -> f32 {
        assert_eq!(index.len(), self.shape.len(), "index rank");
        let flat = index.iter().zip(&self.shape).fold(0, |acc, (i, n)| {
            assert!(i < n, "index out of bounds");
            acc * n + i
        });
        self.as_slice()[flat]
    }
}

/// Centres of `grid` relative to `reference`, split into x and y.
struct Centres {
    x: Vec<f32>,
    y: Vec<f32>,
}

impl Centres {
    fn of(grid: &PatchGrid, reference: (f64, f64)) -> Result<Self> {
        let (x, y) = grid.relative_centres(reference)?;
        Ok(Centres { x, y })
    }

    fn gather(&self, indices: &[usize]) -> Self {
        Centres { x: indices.iter().map(|&i| self.x[i]).collect(), y: indices.iter().map(|&i| self.y[i]).collect() }
    }
}

/// Distances from one query centre to every key centre, divided by `L`.
#[inline]
fn distance_row(qx: f32, qy: f32, keys: &Centres, inv_l: f32, row: &mut [f32]) {
    for ((d, &kx), &ky) in row.iter_mut().zip(&keys.x).zip(&keys.y) {
        let (dx, dy) = (qx - kx, qy - ky);
        *d = (dx * dx + dy * dy).sqrt() * inv_l;
    }
}

/// `dst[j] = distance[j] * scale` for every `j`: writes all of `dst`.
#[inline]
fn write_scaled(dst: &mut [MaybeUninit<f32>], distance: &[f32], scale: f32) {
    assert_eq!(dst.len(), distance.len(), "row length");
    for (o, &d) in dst.iter_mut().zip(distance) {
        o.write(d * scale);
    }
}

/// Fill `buffer`, of shape `(scales.len(), n_query, n_key)` (allocated by the caller before
/// anything else, so that a table too large fails first), with `scale_s * distance / L`.
/// Work is split over query rows; each row's distances are computed once into a small
/// buffer that stays in L1 and then written once per scale (head).
fn scaled_distances(
    mut buffer: UninitBuffer,
    queries: &Centres,
    keys: &Centres,
    inv_l: f32,
    scales: &[f32],
) -> Result<AlignedBuffer> {
    let (nq, nk, ns) = (queries.x.len(), keys.x.len(), scales.len());
    // The buffer was sized by `Size::of` for exactly these dimensions, so the products fit.
    assert_eq!(buffer.len(), ns * nq * nk, "table buffer and its dimensions");
    if !buffer.is_empty() {
        // The rows one query writes, one per scale, side by side: rows[q * ns + s] is row (s, q).
        let mut heads = vec_with_capacity("heads", &[ns])?;
        heads.extend(buffer.as_uninit_mut().chunks_exact_mut(nq * nk).map(|h| h.chunks_exact_mut(nk)));
        let mut rows: Vec<&mut [MaybeUninit<f32>]> = vec_with_capacity("heads, query", &[ns, nq])?;
        for _ in 0..nq {
            rows.extend(heads.iter_mut().map(|head| head.next().expect("every head has nq rows")));
        }
        // Enough rows per task to amortise scheduling, few enough to balance two to many cores.
        let queries_per_task = (64 * 1024 / nk).max(1);
        rows.par_chunks_mut(ns).enumerate().with_min_len(queries_per_task).for_each_init(
            || vec![0f32; nk],
            |distance, (q, dsts)| {
                distance_row(queries.x[q], queries.y[q], keys, inv_l, distance);
                for (dst, &scale) in dsts.iter_mut().zip(scales) {
                    write_scaled(dst, distance, scale);
                }
            },
        );
    }
    // SAFETY: `rows` held every row of the buffer (ns heads of nq rows of nk elements, all
    // taken), and each was written in full by `write_scaled`; an empty buffer has nothing to write.
    Ok(unsafe { buffer.assume_init() })
}

/// `(Nq, Nk)` table of `||centre_q - centre_k|| / L`. A table no memory could hold is an
/// `InvalidArgument` and one the allocator refuses `OutOfMemory`, both named `query, key`
/// and raised before any work.
pub fn ground_distance_table(query: &PatchGrid, key: &PatchGrid, ref_length: Option<f64>) -> Result<Table> {
    let inv_l = (1.0 / resolve_ref_length(query, key, ref_length)?) as f32;
    let shape = vec![query.num_patches(), key.num_patches()];
    let buffer = UninitBuffer::new("query, key", &shape)?;
    let (queries, keys) = (Centres::of(query, query.origin)?, Centres::of(key, query.origin)?);
    Ok(Table { shape, data: scaled_distances(buffer, &queries, &keys, inv_l, &[1.0])? })
}

/// `(H, Nq, Nk)` Scale-ALiBi bias: `-m_h * ||centre_q - centre_k|| / L`; sizes are checked
/// first, as in [`ground_distance_table`] (named `heads, query, key`).
pub fn scale_alibi_bias(query: &PatchGrid, key: &PatchGrid, heads: i64, ref_length: Option<f64>) -> Result<Table> {
    let inv_l = (1.0 / resolve_ref_length(query, key, ref_length)?) as f32;
    let shape = vec![require_count("heads", heads)?, query.num_patches(), key.num_patches()];
    let buffer = UninitBuffer::new("heads, query, key", &shape)?;
    let mut scales = alibi_slopes(heads)?;
    scales.iter_mut().for_each(|m| *m = -*m);
    let (queries, keys) = (Centres::of(query, query.origin)?, Centres::of(key, query.origin)?);
    Ok(Table { shape, data: scaled_distances(buffer, &queries, &keys, inv_l, &scales)? })
}

/// Kept-token indices for a batch: `batch` rows of `per_row` indices each, row-major.
pub struct KeptIndices<'a> {
    pub name: &'a str,
    pub values: &'a [i64],
    pub batch: usize,
    pub per_row: usize,
}

impl KeptIndices<'_> {
    /// Check every index against `limit` and convert to usize.
    fn validated(&self, limit: usize) -> Result<Vec<usize>> {
        if self.values.len() != Size::of::<i64>(self.name, &[self.batch, self.per_row])?.len {
            return Err(CoreError::invalid(self.name, "length does not match its shape"));
        }
        self.values
            .iter()
            .enumerate()
            .map(|(flat, &i)| {
                if i >= 0 && (i as u64) < limit as u64 {
                    Ok(i as usize)
                } else {
                    let (b, j) = (flat / self.per_row.max(1), flat % self.per_row.max(1));
                    Err(CoreError::invalid(
                        self.name,
                        format!("index {i} at [{b}, {j}] is out of range for a grid of {limit} patches"),
                    ))
                }
            })
            .collect()
    }
}

/// Sub-tables for masked pre-training: for each batch element `b`, the distances (or the
/// bias, when `heads` is given) between its kept query patches and its kept key patches.
/// Shape `(B, kq, kk)` for distances, `(B, H, kq, kk)` for the bias. Built straight from the
/// kept tokens' centres: memory is O(B * kept^2), never a full table per batch element.
/// After the indices are checked, the table is sized and allocated before any other work
/// (errors named `query_idx, key_idx`, or `heads, query_idx, key_idx` for the bias).
pub fn masked_table(
    query: &PatchGrid,
    key: &PatchGrid,
    query_idx: &KeptIndices,
    key_idx: &KeptIndices,
    heads: Option<i64>,
    ref_length: Option<f64>,
) -> Result<Table> {
    if query_idx.batch != key_idx.batch {
        return Err(CoreError::invalid(
            key_idx.name,
            format!("batch size {} differs from {}'s {}", key_idx.batch, query_idx.name, query_idx.batch),
        ));
    }
    let inv_l = (1.0 / resolve_ref_length(query, key, ref_length)?) as f32;
    let q_kept = query_idx.validated(query.num_patches())?;
    let k_kept = key_idx.validated(key.num_patches())?;
    let (batch, kq, kk) = (query_idx.batch, query_idx.per_row, key_idx.per_row);
    let (shape, name) = match heads {
        Some(h) => (vec![batch, require_count("heads", h)?, kq, kk], "heads, query_idx, key_idx"),
        None => (vec![batch, kq, kk], "query_idx, key_idx"),
    };
    let mut buffer = UninitBuffer::new(name, &shape)?;
    let scales: Vec<f32> = match heads {
        Some(h) => alibi_slopes(h)?.into_iter().map(|m| -m).collect(),
        None => vec![1.0],
    };
    let (all_q, all_k) = (Centres::of(query, query.origin)?, Centres::of(key, query.origin)?);
    let s = scales.len();
    // Within the buffer's size, checked by `Size::of` (or zero when a dimension is).
    let block = s * kq * kk;
    if !buffer.is_empty() {
        buffer.as_uninit_mut().par_chunks_exact_mut(block).enumerate().for_each(|(b, out)| {
            let queries = all_q.gather(&q_kept[b * kq..(b + 1) * kq]);
            let keys = all_k.gather(&k_kept[b * kk..(b + 1) * kk]);
            let mut distance = vec![0f32; kk];
            for (q, (&qx, &qy)) in queries.x.iter().zip(&queries.y).enumerate() {
                distance_row(qx, qy, &keys, inv_l, &mut distance);
                for (h, &scale) in scales.iter().enumerate() {
                    write_scaled(&mut out[(h * kq + q) * kk..][..kk], &distance, scale);
                }
            }
        });
    }
    // SAFETY: the buffer is `batch` blocks of `s * kq * kk`, all visited; in each, every row
    // (h, q) of `kk` elements was written in full by `write_scaled`.
    Ok(Table { shape, data: unsafe { buffer.assume_init() } })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(rows: i64, cols: i64, patch: i64, gsd: f64, origin: (f64, f64)) -> PatchGrid {
        PatchGrid::new(rows, cols, patch, gsd, origin).unwrap()
    }

    #[test]
    fn same_gsd_is_plain_alibi_on_the_patch_grid() {
        let g = grid(4, 5, 16, 10.0, (500_000.0, 4_000_000.0));
        let t = ground_distance_table(&g, &g, None).unwrap();
        for a in 0..20 {
            for b in 0..20 {
                let (dr, dc) = ((a / 5) as f32 - (b / 5) as f32, (a % 5) as f32 - (b % 5) as f32);
                assert!((t.at(&[a, b]) - (dr * dr + dc * dc).sqrt()).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn finer_grid_distances_shrink_with_gsd() {
        // 2x2 patches at 10 m against 8x8 patches at 2.5 m over the same footprint.
        let coarse = grid(2, 2, 16, 10.0, (0.0, 320.0));
        let fine = grid(8, 8, 16, 2.5, (0.0, 320.0));
        let t = ground_distance_table(&coarse, &fine, None).unwrap();
        assert_eq!(t.shape(), &[4, 64]);
        // L = 160 m. Coarse patch 0 centre (80, 240); fine patch 0 centre (20, 300).
        let expected = ((60f32).powi(2) + (60f32).powi(2)).sqrt() / 160.0;
        assert!((t.at(&[0, 0]) - expected).abs() < 1e-6);
    }

    #[test]
    fn bias_is_minus_slope_times_distance() {
        let q = grid(3, 3, 8, 1.0, (0.0, 0.0));
        let k = grid(6, 6, 8, 0.5, (4.0, -4.0));
        let d = ground_distance_table(&q, &k, Some(5.0)).unwrap();
        let b = scale_alibi_bias(&q, &k, 6, Some(5.0)).unwrap();
        let slopes = alibi_slopes(6).unwrap();
        for (h, &slope) in slopes.iter().enumerate() {
            for i in 0..9 {
                for j in 0..36 {
                    assert_eq!(b.at(&[h, i, j]), -slope * d.at(&[i, j]));
                }
            }
        }
    }

    #[test]
    fn masked_table_is_a_block_of_the_full_one() {
        let q = grid(4, 4, 16, 10.0, (0.0, 0.0));
        let k = grid(8, 8, 16, 5.0, (0.0, 0.0));
        let full = scale_alibi_bias(&q, &k, 4, None).unwrap();
        let qi: Vec<i64> = vec![0, 5, 15, 3, 2, 1];
        let ki: Vec<i64> = vec![63, 0, 7, 8, 9, 10];
        let sub = masked_table(
            &q,
            &k,
            &KeptIndices { name: "query_idx", values: &qi, batch: 2, per_row: 3 },
            &KeptIndices { name: "key_idx", values: &ki, batch: 2, per_row: 3 },
            Some(4),
            None,
        )
        .unwrap();
        assert_eq!(sub.shape(), &[2, 4, 3, 3]);
        for b in 0..2 {
            for h in 0..4 {
                for i in 0..3 {
                    for j in 0..3 {
                        let (a, c) = (qi[b * 3 + i] as usize, ki[b * 3 + j] as usize);
                        assert_eq!(sub.at(&[b, h, i, j]), full.at(&[h, a, c]));
                    }
                }
            }
        }
    }

    #[test]
    fn out_of_range_index_names_the_argument() {
        let g = grid(2, 2, 4, 1.0, (0.0, 0.0));
        let ok = [0i64, 1];
        let bad = [0i64, 4];
        let err = masked_table(
            &g,
            &g,
            &KeptIndices { name: "query_idx", values: &ok, batch: 1, per_row: 2 },
            &KeptIndices { name: "key_idx", values: &bad, batch: 1, per_row: 2 },
            None,
            None,
        )
        .err()
        .unwrap();
        assert!(err.to_string().starts_with("key_idx: index 4 at [0, 1]"), "{err}");
    }
}
