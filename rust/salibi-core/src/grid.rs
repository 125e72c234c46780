//! Patch grids on the ground: where each token of a chip sits, in metres.

use crate::error::{require_count, require_finite, require_positive, Result};

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
    /// Validated constructor: every mistake names the offending argument.
    pub fn new(rows: i64, cols: i64, patch_px: i64, gsd: f64, origin: (f64, f64)) -> Result<Self> {
        Ok(PatchGrid {
            rows: require_count("rows", rows)?,
            cols: require_count("cols", cols)?,
            patch_px: require_count("patch_px", patch_px)?,
            gsd: require_positive("gsd", gsd)?,
            origin: (require_finite("origin[0]", origin.0)?, require_finite("origin[1]", origin.1)?),
        })
    }

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

    /// All centres relative to `reference`, as f32 pairs. Differences of chips of one
    /// footprint are small, so f32 keeps sub-millimetre precision even in UTM coordinates of
    /// hundreds of kilometres, because the large common offset is removed in f64 first.
    pub fn relative_centres(&self, reference: (f64, f64)) -> (Vec<f32>, Vec<f32>) {
        let n = self.num_patches();
        let (mut xs, mut ys) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..n {
            let (x, y) = self.centre(i);
            xs.push((x - reference.0) as f32);
            ys.push((y - reference.1) as f32);
        }
        (xs, ys)
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
}
