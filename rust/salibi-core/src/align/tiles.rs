//! The chip grid: square chips of `tile_size` metres over the common footprint.

use crate::error::{require_finite, require_positive, CoreError, Result};
use crate::size::{vec_with_capacity, Size};

/// GSDs are compared on a micrometre lattice: finer than any raster, coarse enough that
/// `0.1 * 3` and `0.3` are the same pixel size.
const MICROMETRES_PER_METRE: f64 = 1e6;

/// Relative slack when testing "is a whole number" on float lengths.
const WHOLE_TOLERANCE: f64 = 1e-6;

/// A `rows x cols` grid of square chips; chip `i` (row-major) has its top-left corner at
/// `(left + (i % cols) * tile_size, top - (i / cols) * tile_size)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TileGrid {
    pub left: f64,
    pub top: f64,
    pub rows: usize,
    pub cols: usize,
    pub tile_size: f64,
    /// Ground length that is a whole number of pixels at every GSD; `left`/`top` sit on the
    /// anchor's lattice of this step.
    pub unit: f64,
}

impl TileGrid {
    /// `rows * cols`, which [`plan_tile_grid`] checked.
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Top-left ground corner of chip `index` (row-major).
    pub fn chip_origin(&self, index: usize) -> (f64, f64) {
        let (r, c) = (index / self.cols, index % self.cols);
        (
            self.left + c as f64 * self.tile_size,
            self.top - r as f64 * self.tile_size,
        )
    }

    /// `[min_x, min_y, max_x, max_y]` of chip `index`.
    pub fn chip_bounds(&self, index: usize) -> [f64; 4] {
        let (x, y) = self.chip_origin(index);
        [x, y - self.tile_size, x + self.tile_size, y]
    }

    /// `(len, 4)` row-major `[min_x, min_y, max_x, max_y]` of every chip; an `OutOfMemory`
    /// error named `bounds` when they cannot be allocated.
    pub fn all_bounds(&self) -> Result<Vec<f64>> {
        let mut bounds = vec_with_capacity("bounds", &[self.rows, self.cols, 4])?;
        bounds.extend((0..self.len()).flat_map(|i| self.chip_bounds(i)));
        Ok(bounds)
    }

    /// `[min_x, min_y, max_x, max_y]` of the whole grid.
    pub fn extent(&self) -> [f64; 4] {
        [
            self.left,
            self.top - self.rows as f64 * self.tile_size,
            self.left + self.cols as f64 * self.tile_size,
            self.top,
        ]
    }
}

fn to_micrometres(value: f64) -> u128 {
    (value * MICROMETRES_PER_METRE).round().max(1.0) as u128
}

fn gcd(a: u128, b: u128) -> u128 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn is_whole(ratio: f64) -> bool {
    (ratio - ratio.round()).abs() <= WHOLE_TOLERANCE * ratio.max(1.0)
}

/// A whole, non-negative count computed in f64 as a usize; `None` when it is beyond every
/// count (`as usize` would saturate to usize::MAX, a grid of 2**64 - 1 rows).
fn whole_count(value: f64) -> Option<usize> {
    (value < 2f64.powi(63)).then_some(value as usize)
}

/// The smallest ground length that is a whole number of pixels at every GSD in `gsds`
/// (least common multiple on a micrometre lattice), metres.
pub fn common_pixel_unit(gsds: &[(&str, f64)]) -> Result<f64> {
    if gsds.is_empty() {
        return Err(CoreError::invalid("gsds", "at least one GSD is needed"));
    }
    let mut lcm: u128 = 1;
    for &(name, gsd) in gsds {
        require_positive(&format!("gsd of {name}"), gsd)?;
        let g = to_micrometres(gsd);
        lcm = lcm / gcd(lcm, g) * g;
        if lcm > 1_000_000_000_000_000 {
            // Over 1e9 m: these GSDs have no useful common multiple.
            return Ok(f64::INFINITY);
        }
    }
    Ok(lcm as f64 / MICROMETRES_PER_METRE)
}

/// `tile_size / gsd` when it is a whole number of pixels, else an error that suggests tile
/// sizes that fit every modality (multiples of `unit`).
pub fn pixels_per_tile(name: &str, gsd: f64, tile_size: f64, unit: f64) -> Result<usize> {
    require_positive(&format!("gsd of {name}"), gsd)?;
    require_positive("tile_size_m", tile_size)?;
    let ratio = tile_size / gsd;
    if is_whole(ratio) && ratio.round() >= 1.0 {
        // The chip's pixels must be countable: one float per pixel, one band.
        return whole_count(ratio.round())
            .filter(|&px| Size::of::<f32>("tile_size_m", &[px, px]).is_ok())
            .ok_or_else(|| {
                CoreError::invalid(
                    "tile_size_m",
                    format!(
                        "{tile_size} m is {ratio:.3e} {name} pixels a side at {gsd} m/px, more than any memory can hold; use a smaller tile size"
                    ),
                )
            });
    }
    // A common multiple far beyond the tile means GSDs like 0.4999935 and 1.00005: no useful hint.
    let hint = if unit.is_finite() && unit <= 100.0 * tile_size {
        let lower = (tile_size / unit).floor() * unit;
        let upper = lower + unit;
        if lower >= unit {
            format!("; tile sizes that fit every modality are multiples of {unit} m, e.g. {lower} or {upper}")
        } else {
            format!("; tile sizes that fit every modality are multiples of {unit} m, e.g. {upper}")
        }
    } else {
        "; choose round GSDs with a common multiple (e.g. 10 and 2.5)".to_string()
    };
    Err(CoreError::invalid(
        "tile_size_m",
        format!("{tile_size} m is not a whole number of {name} pixels at {gsd} m/px ({ratio:.3} px){hint}"),
    ))
}

/// The largest grid of `tile_size` chips inside `footprint` (`[min_x, min_y, max_x, max_y]`)
/// whose corners lie on `anchor + k * unit`, `unit` being the common pixel unit of `gsds`.
/// Anchoring on a source raster's corner makes chips at that raster's native GSD exact pixel
/// copies of it.
pub fn plan_tile_grid(
    footprint: [f64; 4],
    tile_size: f64,
    gsds: &[(&str, f64)],
    anchor: (f64, f64),
) -> Result<TileGrid> {
    require_positive("tile_size_m", tile_size)?;
    for (i, v) in footprint.iter().enumerate() {
        require_finite(&format!("footprint[{i}]"), *v)?;
    }
    require_finite("anchor[0]", anchor.0)?;
    require_finite("anchor[1]", anchor.1)?;
    let [min_x, min_y, max_x, max_y] = footprint;
    if !(max_x > min_x && max_y > min_y) {
        return Err(CoreError::invalid("footprint", "is empty: the inputs do not overlap"));
    }
    let mut unit = common_pixel_unit(gsds)?;
    for &(name, gsd) in gsds {
        pixels_per_tile(name, gsd, tile_size, unit)?;
    }
    // GSDs finer than the micrometre lattice can leave a unit that does not divide the tile;
    // the tile itself is then the (coarser) snapping step, still whole pixels everywhere.
    if !(unit.is_finite() && unit <= tile_size && is_whole(tile_size / unit)) {
        unit = tile_size;
    }
    let left = anchor.0 + ((min_x - anchor.0) / unit - WHOLE_TOLERANCE).ceil() * unit;
    let top = anchor.1 - ((anchor.1 - max_y) / unit - WHOLE_TOLERANCE).ceil() * unit;
    let cols = ((max_x - left) / tile_size + WHOLE_TOLERANCE).floor().max(0.0);
    let rows = ((top - min_y) / tile_size + WHOLE_TOLERANCE).floor().max(0.0);
    // Every chip must have bounds (four f64) that could be held in memory, so `rows * cols`
    // never overflows.
    let counts = whole_count(rows)
        .zip(whole_count(cols))
        .filter(|&(r, c)| Size::of::<[f64; 4]>("tile_size_m", &[r, c]).is_ok());
    let Some((rows, cols)) = counts else {
        return Err(CoreError::invalid(
            "tile_size_m",
            format!(
                "{tile_size} m chips over a footprint of {:.3e} x {:.3e} m are {cols:.3e} x {rows:.3e} chips, more than any memory can hold; use a larger tile size",
                max_x - min_x,
                max_y - min_y
            ),
        ));
    };
    if rows == 0 || cols == 0 {
        let (width, height) = (max_x - min_x, max_y - min_y);
        // The snapped corner does not depend on the tile size: this is the largest that fits.
        let room = (max_x - left).min(top - min_y);
        let fits = (room / unit + WHOLE_TOLERANCE).floor() * unit;
        let hint = if fits >= unit {
            format!("use a tile size of at most {fits} m")
        } else {
            "it is too small to cut any chip from".to_string()
        };
        return Err(CoreError::invalid(
            "tile_size_m",
            format!(
                "the common footprint of the inputs is {width:.1} x {height:.1} m, smaller than one {tile_size} m chip; {hint}"
            ),
        ));
    }
    Ok(TileGrid {
        left,
        top,
        rows,
        cols,
        tile_size,
        unit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_is_the_least_common_multiple() {
        assert_eq!(common_pixel_unit(&[("a", 2.5), ("b", 10.0)]).unwrap(), 10.0);
        assert_eq!(common_pixel_unit(&[("a", 0.5), ("b", 4.5)]).unwrap(), 4.5);
        assert_eq!(common_pixel_unit(&[("a", 4.0), ("b", 6.0)]).unwrap(), 12.0);
        assert!((common_pixel_unit(&[("a", 0.3), ("b", 0.1 * 3.0)]).unwrap() - 0.3).abs() < 1e-12);
    }

    #[test]
    fn tile_that_is_not_whole_pixels_suggests_sizes() {
        let err = pixels_per_tile("lores", 9.0, 960.0, 9.0).unwrap_err().to_string();
        assert!(
            err.starts_with("tile_size_m: 960 m is not a whole number of lores pixels"),
            "{err}"
        );
        assert!(err.contains("954") && err.contains("963"), "{err}");
        assert_eq!(pixels_per_tile("hires", 0.5, 960.0, 10.0).unwrap(), 1920);
    }

    #[test]
    fn grid_snaps_to_the_anchor_lattice_inside_the_footprint() {
        let g = plan_tile_grid([3.0, -95.0, 100.0, 2.0], 20.0, &[("a", 5.0), ("b", 10.0)], (0.5, 0.5)).unwrap();
        // left: first 10 m step from 0.5 at or after 3.0; top: last at or below 2.0.
        assert_eq!((g.left, g.top), (10.5, 0.5));
        assert_eq!((g.cols, g.rows), (4, 4));
        let [x0, y0, x1, y1] = g.extent();
        assert!(x0 >= 3.0 && x1 <= 100.0 && y0 >= -95.0 && y1 <= 2.0);
        assert_eq!(g.chip_bounds(5), [30.5, -39.5, 50.5, -19.5]);
    }

    #[test]
    fn footprint_smaller_than_a_chip_is_an_error() {
        let err = plan_tile_grid([0.0, 0.0, 300.0, 300.0], 960.0, &[("a", 1.0)], (0.0, 0.0)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("300.0 x 300.0 m") && text.contains("at most 300 m"),
            "{text}"
        );
    }

    #[test]
    fn chip_counts_no_memory_holds_are_invalid_not_saturated() {
        // 1e303 chips a side saturated to 2**64 - 1 rows and cols, whose product wrapped to 1.
        let err = plan_tile_grid([0.0, 0.0, 1e300, 1e300], 1e-3, &[("a", 1e-3)], (0.0, 0.0)).unwrap_err();
        assert!(matches!(err, CoreError::InvalidArgument { .. }), "{err:?}");
        assert!(err.to_string().starts_with("tile_size_m: 0.001 m chips over a footprint of 1.000e300"), "{err}");
        // 2**31 x 2**31 chips count, but their bounds (2**67 bytes) do not fit any memory.
        let side = 2f64.powi(31);
        assert!(plan_tile_grid([0.0, 0.0, side, side], 1.0, &[("a", 1.0)], (0.0, 0.0)).is_err());
        // 2**22 x 2**22 chips are a grid whose 2**49 bytes of bounds the allocator refuses.
        let side = 2f64.powi(22);
        let grid = plan_tile_grid([0.0, 0.0, side, side], 1.0, &[("a", 1.0)], (0.0, 0.0)).unwrap();
        assert_eq!(grid.len(), 1 << 44);
        let err = grid.all_bounds().unwrap_err();
        assert!(matches!(err, CoreError::OutOfMemory { .. }), "{err:?}");
        assert!(err.to_string().starts_with("bounds: 4194304 x 4194304 x 4 values need 512.0 TiB"), "{err}");
    }

    #[test]
    fn pixels_a_tile_beyond_any_count_are_invalid_not_saturated() {
        // 1e31 pixels a side saturated to usize::MAX.
        let err = pixels_per_tile("hires", 1e-6, 1e25, 1e-6).unwrap_err().to_string();
        assert!(err.starts_with("tile_size_m: 10000000000000000000000000 m is 1.000e31 hires pixels"), "{err}");
        assert_eq!(pixels_per_tile("hires", 1.0, 65536.0, 1.0).unwrap(), 65536);
    }

    #[test]
    fn all_bounds_are_the_chip_bounds_in_order() {
        let g = plan_tile_grid([0.0, 0.0, 30.0, 20.0], 10.0, &[("a", 1.0)], (0.0, 0.0)).unwrap();
        let bounds = g.all_bounds().unwrap();
        assert_eq!(bounds.len(), 6 * 4);
        assert_eq!(bounds[5 * 4..], g.chip_bounds(5));
    }

    #[test]
    fn empty_footprint_is_an_error() {
        let err = plan_tile_grid([0.0, 0.0, -1.0, 5.0], 1.0, &[("a", 1.0)], (0.0, 0.0)).unwrap_err();
        assert!(err.to_string().contains("do not overlap"));
    }
}
