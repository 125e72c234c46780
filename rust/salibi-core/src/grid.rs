//! Patch grids on the ground: where each token of a chip sits, in metres.

use crate::error::{require_count, require_finite, require_positive, CoreError, Result};
use crate::size::{vec_with_capacity, Size};

/// A chip cut into square patches. Patch `(r, c)` (numbered row-major, `r * cols + c`)
/// has its centre at
///
/// ```text
/// x = x0 + (c + 0.5) * patch_px * gsd      y = y0 - (r + 0.5) * patch_px * gsd
/// ```
///
/// where `(x0, y0)` is the top-left ground corner of the chip (metres, projected CRS).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PatchGrid {
    pub rows: usize,
    pub cols: usize,
    pub patch_px: usize,
    pub gsd: f64,
    pub origin: (f64, f64),
}

impl PatchGrid {
    /// Validated constructor: every mistake names the offending argument. The patches must be
    /// few enough that their centres (two f64 each) could be held in memory, so `rows * cols`
    /// never overflows.
    pub fn new(rows: i64, cols: i64, patch_px: i64, gsd: f64, origin: (f64, f64)) -> Result<Self> {
        let (rows, cols) = (require_count("rows", rows)?, require_count("cols", cols)?);
        Size::of::<(f64, f64)>("rows x cols", &[rows, cols]).map_err(|_| {
            CoreError::invalid(
                "rows x cols",
                format!("{rows} x {cols} patches are too many for any memory to hold their centres; use fewer patches"),
            )
        })?;
        Ok(PatchGrid {
            rows,
            cols,
            patch_px: require_count("patch_px", patch_px)?,
            gsd: require_positive("gsd", gsd)?,
            origin: (require_finite("origin[0]", origin.0)?, require_finite("origin[1]", origin.1)?),
        })
    }

    /// `rows * cols`, which [`PatchGrid::new`] checked.
    pub fn num_patches(&self) -> usize {
        self.rows * self.cols
    }

    /// Ground length of one patch side, metres.
    pub fn footprint(&self) -> f64 {
        self.patch_px as f64 * self.gsd
    }

    /// Centre of patch `index` (row-major), metres.
    pub fn centre(&self, index: usize) -> (f64, f64) {
        let (r, c) = (index / self.cols, index % self.cols);
        let step = self.footprint();
        (self.origin.0 + (c as f64 + 0.5) * step, self.origin.1 - (r as f64 + 0.5) * step)
    }

    /// All centres, `(num_patches, 2)` row-major `(x, y)` pairs in metres; an `OutOfMemory`
    /// error named `centres` when they cannot be allocated.
    pub fn centres(&self) -> Result<Vec<f64>> {
        let mut xy = vec_with_capacity("centres", &[self.rows, self.cols, 2])?;
        xy.extend((0..self.num_patches()).flat_map(|i| {
            let (x, y) = self.centre(i);
            [x, y]
        }));
        Ok(xy)
    }

    /// All centres relative to `reference`, as f32 pairs. Differences of chips of one
    /// footprint are small, so f32 keeps sub-millimetre precision even in UTM coordinates of
    /// hundreds of kilometres, because the large common offset is removed in f64 first.
    pub fn relative_centres(&self, reference: (f64, f64)) -> Result<(Vec<f32>, Vec<f32>)> {
        let dims = [self.rows, self.cols];
        let (mut xs, mut ys) = (vec_with_capacity("rows x cols", &dims)?, vec_with_capacity("rows x cols", &dims)?);
        for i in 0..self.num_patches() {
            let (x, y) = self.centre(i);
            xs.push((x - reference.0) as f32);
            ys.push((y - reference.1) as f32);
        }
        Ok((xs, ys))
    }

    /// A hashable identity of the geometry (bit patterns of the floats).
    pub fn key(&self) -> [u64; 6] {
        [
            self.rows as u64,
            self.cols as u64,
            self.patch_px as u64,
            self.gsd.to_bits(),
            self.origin.0.to_bits(),
            self.origin.1.to_bits(),
        ]
    }
}

/// The default reference length `L`: the larger patch footprint of the two grids, i.e. one
/// patch of the coarsest modality, so same-GSD attention at the coarse scale is plain 2-D
/// ALiBi on the patch grid.
pub fn default_ref_length(query: &PatchGrid, key: &PatchGrid) -> f64 {
    query.footprint().max(key.footprint())
}

/// Resolve an optional caller-given reference length.
pub fn resolve_ref_length(query: &PatchGrid, key: &PatchGrid, ref_length: Option<f64>) -> Result<f64> {
    match ref_length {
        Some(length) => require_positive("ref_length", length),
        None => Ok(default_ref_length(query, key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centres_follow_the_formula() {
        let g = PatchGrid::new(2, 3, 16, 2.5, (1000.0, 5000.0)).unwrap();
        // patch (1, 2): x = 1000 + 2.5 * 40, y = 5000 - 1.5 * 40
        assert_eq!(g.centre(5), (1100.0, 4940.0));
        assert_eq!(g.centre(0), (1020.0, 4980.0));
    }

    #[test]
    fn bad_geometry_names_the_argument() {
        let e = PatchGrid::new(0, 3, 16, 1.0, (0.0, 0.0)).unwrap_err();
        assert!(e.to_string().starts_with("rows:"), "{e}");
        let e = PatchGrid::new(3, 3, 16, f64::NAN, (0.0, 0.0)).unwrap_err();
        assert!(e.to_string().starts_with("gsd:"), "{e}");
        let e = PatchGrid::new(3, 3, 16, -1.0, (0.0, 0.0)).unwrap_err();
        assert!(e.to_string().starts_with("gsd:"), "{e}");
        let e = PatchGrid::new(3, 3, 0, 1.0, (0.0, 0.0)).unwrap_err();
        assert!(e.to_string().starts_with("patch_px:"), "{e}");
        let e = PatchGrid::new(3, 3, 4, 1.0, (f64::INFINITY, 0.0)).unwrap_err();
        assert!(e.to_string().starts_with("origin[0]:"), "{e}");
    }

    #[test]
    fn a_patch_count_no_memory_holds_is_invalid_not_wrapped() {
        // 2**40 x 2**40 patches wrapped to a grid of 0 patches before the count was checked.
        let e = PatchGrid::new(1 << 40, 1 << 40, 16, 1.0, (0.0, 0.0)).unwrap_err();
        assert!(matches!(e, CoreError::InvalidArgument { .. }), "{e:?}");
        assert!(e.to_string().starts_with("rows x cols: 1099511627776 x 1099511627776 patches"), "{e}");
        // 2**23 x 2**23 patches are a grid, but their centres (2**50 bytes) cannot be allocated.
        let g = PatchGrid::new(1 << 23, 1 << 23, 16, 1.0, (0.0, 0.0)).unwrap();
        assert_eq!(g.num_patches(), 1 << 46);
        assert!(matches!(g.centres(), Err(CoreError::OutOfMemory { .. })));
        assert!(matches!(g.relative_centres((0.0, 0.0)), Err(CoreError::OutOfMemory { .. })));
    }

    #[test]
    fn centres_are_row_major_pairs() {
        let g = PatchGrid::new(2, 3, 16, 2.5, (1000.0, 5000.0)).unwrap();
        let xy = g.centres().unwrap();
        assert_eq!(xy.len(), 12);
        assert_eq!((xy[10], xy[11]), g.centre(5));
    }
}
