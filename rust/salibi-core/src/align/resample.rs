//! Resampling source rasters onto chip pixel grids, with per-chip validity.
//!
//! Each axis is resampled with its own 1-D taps (the 2-D weights are their products):
//!
//! - downsampling or equal size (chip pixel >= source pixel): **area average**, each source
//!   pixel weighted by the length of its overlap with the chip pixel. An exactly aligned
//!   chip at the native GSD gets one tap of weight 1: a plain copy.
//! - upsampling (chip pixel < source pixel): **bilinear** between the two source pixels
//!   around the chip pixel centre.
//!
//! Invalid source pixels (NaN or infinite, equal to the raster's nodata, or — with
//! `zero_fill` — zero in every band) and pixels outside the raster never contribute: weights
//! are renormalised over the valid taps. A chip pixel is valid when at least half of it is
//! covered by valid data (area), or when the source pixel under its centre is valid
//! (bilinear). Invalid chip pixels are NaN in every band of the modality, and the chip's
//! invalid fraction is their share of the chip.

use rayon::prelude::*;

use crate::error::{require_count, require_finite, require_positive, CoreError, Result};
use crate::size::{vec_filled, vec_with_capacity, Size};

/// Below this the chip pixel is smaller than a source pixel and bilinear is used.
const AREA_MIN_SCALE: f64 = 1.0 - 1e-6;
/// Coordinates within this many source pixels of an integer are that integer (float noise
/// on UTM coordinates must not create slivers of weight on a neighbour).
const SNAP: f64 = 1e-6;
/// Minimum valid share of a chip pixel.
const VALID_SHARE: f64 = 0.5 - 1e-9;

/// A north-up pixel grid: pixel `(row, col)` covers
/// `[left + col * pixel_width, left + (col + 1) * pixel_width] x
///  [top - (row + 1) * pixel_height, top - row * pixel_height]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoTransform {
    pub left: f64,
    pub top: f64,
    pub pixel_width: f64,
    pub pixel_height: f64,
}

impl GeoTransform {
    pub fn new(left: f64, top: f64, pixel_width: f64, pixel_height: f64) -> Result<Self> {
        Ok(GeoTransform {
            left: require_finite("transform.left", left)?,
            top: require_finite("transform.top", top)?,
            pixel_width: require_positive("transform.pixel_width", pixel_width)?,
            pixel_height: require_positive("transform.pixel_height", pixel_height)?,
        })
    }
}

/// A `(bands, height, width)` row-major float32 raster on the target CRS.
#[derive(Debug, Clone, Copy)]
pub struct SourceRaster<'a> {
    pub data: &'a [f32],
    pub bands: usize,
    pub height: usize,
    pub width: usize,
    pub transform: GeoTransform,
    pub nodata: Option<f32>,
    pub zero_fill: bool,
}

impl<'a> SourceRaster<'a> {
    /// Validated constructor; `name` is how the caller refers to this source in errors.
    pub fn new(
        name: &str,
        data: &'a [f32],
        shape: (usize, usize, usize),
        transform: GeoTransform,
        nodata: Option<f32>,
        zero_fill: bool,
    ) -> Result<Self> {
        let (bands, height, width) = shape;
        if bands == 0 || height == 0 || width == 0 {
            return Err(CoreError::invalid(name, format!("empty raster of shape {shape:?}")));
        }
        if data.len() != Size::of::<f32>(name, &[bands, height, width])?.len {
            return Err(CoreError::invalid(
                name,
                format!("{} values do not fill shape {shape:?}", data.len()),
            ));
        }
        Ok(SourceRaster {
            data,
            bands,
            height,
            width,
            transform,
            nodata,
            zero_fill,
        })
    }

    fn plane(&self, band: usize) -> &'a [f32] {
        // Within `data.len()`, checked by `new`.
        let n = self.height * self.width;
        &self.data[band * n..(band + 1) * n]
    }
}

/// One source pixel's contribution along one axis.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tap {
    /// Source pixel index; may be outside `0..len` (then it is invalid).
    index: isize,
    /// `index * stride` (the pixel's offset in the source's row-major plane along this axis),
    /// `None` outside the source: computed once per tap, so that the loops over chip pixels
    /// and bands only add two offsets.
    offset: Option<usize>,
    /// Interpolation weight.
    weight: f64,
    /// Share of the chip pixel this tap decides validity for.
    coverage: f64,
}

/// Taps for every output pixel along one axis, flattened with offsets.
#[derive(Debug, Default)]
struct AxisTaps {
    offsets: Vec<usize>,
    taps: Vec<Tap>,
}

impl AxisTaps {
    fn of(&self, k: usize) -> &[Tap] {
        &self.taps[self.offsets[k]..self.offsets[k + 1]]
    }
}

fn snap(v: f64) -> f64 {
    let r = v.round();
    if (v - r).abs() < SNAP {
        r
    } else {
        v
    }
}

/// Taps of `n_out` output pixels along an axis of `n_in` source pixels `stride` apart in the
/// source plane: output pixel `k` starts at source pixel coordinate `start + k * scale` and is
/// `scale` source pixels long. Area taps outside the source are left out (they would be
/// invalid, so contribute nothing), which bounds their number by `n_in` per output pixel
/// whatever the scale.
fn axis_taps(start: f64, scale: f64, n_out: usize, n_in: usize, stride: usize) -> Result<AxisTaps> {
    let mut out = AxisTaps {
        offsets: vec_with_capacity("size_px", &[n_out + 1])?,
        taps: Vec::new(),
    };
    // Inside the source, `index * stride` is within its plane (`n_in * stride` values).
    let offset = |index: isize| usize::try_from(index).ok().filter(|&i| i < n_in).map(|i| i * stride);
    out.offsets.push(0);
    for k in 0..n_out {
        let a = snap(start + k as f64 * scale);
        if scale >= AREA_MIN_SCALE {
            let b = snap(a + scale);
            // `as isize` saturates; the source has at most isize::MAX pixels a side.
            let (first, last) = ((a.floor() as isize).max(0), (b.ceil() as isize).min(n_in as isize));
            for j in first..last {
                let overlap = b.min(j as f64 + 1.0) - a.max(j as f64);
                if overlap > SNAP {
                    let w = overlap / scale;
                    out.taps.push(Tap {
                        index: j,
                        offset: offset(j),
                        weight: w,
                        coverage: w,
                    });
                }
            }
        } else {
            let centre = snap(a + 0.5 * scale - 0.5);
            let j0 = centre.floor();
            let t = centre - j0;
            let j0 = j0 as isize;
            if t == 0.0 {
                out.taps.push(Tap {
                    index: j0,
                    offset: offset(j0),
                    weight: 1.0,
                    coverage: 1.0,
                });
            } else {
                // The pixel under the centre decides validity.
                let (c0, c1) = if t < 0.5 { (1.0, 0.0) } else { (0.0, 1.0) };
                out.taps.push(Tap {
                    index: j0,
                    offset: offset(j0),
                    weight: 1.0 - t,
                    coverage: c0,
                });
                out.taps.push(Tap {
                    index: j0 + 1,
                    offset: offset(j0 + 1),
                    weight: t,
                    coverage: c1,
                });
            }
        }
        out.offsets.push(out.taps.len());
    }
    Ok(out)
}

/// `true` where every band of the pixel is usable (see the module docs), row-major.
pub fn validity_mask(source: &SourceRaster<'_>) -> Result<Vec<bool>> {
    let mut mask = vec_filled("sources", &[source.height, source.width], true)?;
    let rows_per_task = (1 << 16) / source.width.max(1) + 1;
    mask.par_chunks_mut(source.width)
        .with_min_len(rows_per_task)
        .enumerate()
        .for_each(|(row, out)| {
            let start = row * source.width;
            let mut all_zero = vec![source.zero_fill; out.len()];
            for band in 0..source.bands {
                let values = &source.plane(band)[start..start + out.len()];
                for ((ok, zero), &v) in out.iter_mut().zip(all_zero.iter_mut()).zip(values) {
                    if !v.is_finite() || source.nodata == Some(v) {
                        *ok = false;
                    }
                    if v != 0.0 {
                        *zero = false;
                    }
                }
            }
            for (ok, zero) in out.iter_mut().zip(all_zero) {
                if zero {
                    *ok = false;
                }
            }
        });
    Ok(mask)
}

/// Resampled chips of one modality.
#[derive(Debug, Clone)]
pub struct ChipStack {
    /// `(chips, channels, size, size)` row-major; NaN where a chip pixel is invalid.
    pub data: Vec<f32>,
    /// Share of invalid pixels of each chip, in `[0, 1]`.
    pub invalid_fraction: Vec<f64>,
    pub chips: usize,
    pub channels: usize,
    pub size: usize,
}

/// Resample `sources` (the files of one modality, their bands concatenated in order into the
/// chip channels) onto `size x size` chips of `gsd` metres per pixel whose top-left corners
/// are `origins`. Chips are computed in parallel. The output is sized and allocated before
/// any work: a chip no memory could hold is an `InvalidArgument` named `size_px`, and chips
/// no memory could hold or the allocator refuses are named `origins`.
pub fn resample_chips(sources: &[SourceRaster<'_>], origins: &[(f64, f64)], gsd: f64, size: i64) -> Result<ChipStack> {
    if sources.is_empty() {
        return Err(CoreError::invalid("sources", "at least one source raster is needed"));
    }
    let gsd = require_positive("gsd", gsd)?;
    let size = require_count("size_px", size)?;
    for (i, &(x, y)) in origins.iter().enumerate() {
        require_finite(&format!("origins[{i}]"), x)?;
        require_finite(&format!("origins[{i}]"), y)?;
    }
    let channels = sources
        .iter()
        .try_fold(0usize, |n, s| n.checked_add(s.bands))
        .ok_or_else(|| CoreError::invalid("sources", "have more bands than any count"))?;
    let per_chip = Size::of::<f32>("size_px", &[channels, size, size])?.len;
    let mut data = vec_filled("origins", &[origins.len(), channels, size, size], 0f32)?;
    let mut invalid_fraction = vec_filled("origins", &[origins.len()], 0f64)?;
    let masks = sources.iter().map(validity_mask).collect::<Result<Vec<_>>>()?;
    if !data.is_empty() {
        data.par_chunks_mut(per_chip)
            .zip(invalid_fraction.par_iter_mut())
            .zip(origins.par_iter())
            .try_for_each(|((chip, invalid), &origin)| {
                *invalid = resample_one_chip(sources, &masks, origin, gsd, size, chip)?;
                Ok::<(), CoreError>(())
            })?;
    }
    Ok(ChipStack {
        data,
        invalid_fraction,
        chips: origins.len(),
        channels,
        size,
    })
}

/// Fill one chip (`channels * size * size` values); returns its invalid fraction.
fn resample_one_chip(
    sources: &[SourceRaster<'_>],
    masks: &[Vec<bool>],
    origin: (f64, f64),
    gsd: f64,
    size: usize,
    chip: &mut [f32],
) -> Result<f64> {
    // Within the chip's size, checked by `Size::of` in `resample_chips`.
    let plane = size * size;
    let mut covered = vec_filled("size_px", &[size, size], 0f64)?;
    let mut channel = 0;
    for (source, mask) in sources.iter().zip(masks) {
        let t = source.transform;
        let (w, h) = (source.width, source.height);
        let x_taps = axis_taps((origin.0 - t.left) / t.pixel_width, gsd / t.pixel_width, size, w, 1)?;
        let y_taps = axis_taps((t.top - origin.1) / t.pixel_height, gsd / t.pixel_height, size, h, w)?;
        // The source pixel of a (row, column) tap pair when it is inside and valid.
        let valid_at = |ty: &Tap, tx: &Tap| match (ty.offset, tx.offset) {
            (Some(row), Some(col)) => Some(row + col).filter(|&p| mask[p]),
            _ => None,
        };

        // Valid share of each chip pixel.
        for r in 0..size {
            for c in 0..size {
                let mut share = 0.0;
                for ty in y_taps.of(r) {
                    for tx in x_taps.of(c) {
                        if ty.coverage * tx.coverage > 0.0 && valid_at(ty, tx).is_some() {
                            share += ty.coverage * tx.coverage;
                        }
                    }
                }
                covered[r * size + c] = share;
            }
        }
        for band in 0..source.bands {
            let values = source.plane(band);
            let out = &mut chip[channel * plane..(channel + 1) * plane];
            for r in 0..size {
                for c in 0..size {
                    let p = r * size + c;
                    if covered[p] < VALID_SHARE {
                        out[p] = f32::NAN;
                        continue;
                    }
                    let (mut sum, mut weight) = (0.0f64, 0.0f64);
                    for ty in y_taps.of(r) {
                        for tx in x_taps.of(c) {
                            if let Some(pixel) = valid_at(ty, tx) {
                                let wgt = ty.weight * tx.weight;
                                sum += wgt * values[pixel] as f64;
                                weight += wgt;
                            }
                        }
                    }
                    out[p] = if weight > 0.0 { (sum / weight) as f32 } else { f32::NAN };
                }
            }
            channel += 1;
        }
    }
    // A pixel invalid in any band is invalid in all of them.
    let mut invalid = 0usize;
    for p in 0..plane {
        if (0..channel).any(|ch| chip[ch * plane + p].is_nan()) {
            invalid += 1;
            for ch in 0..channel {
                chip[ch * plane + p] = f32::NAN;
            }
        }
    }
    Ok(invalid as f64 / plane as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gt(left: f64, top: f64, px: f64) -> GeoTransform {
        GeoTransform::new(left, top, px, px).unwrap()
    }

    #[test]
    fn aligned_native_gsd_is_a_copy() {
        let data: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let src = SourceRaster::new("s", &data, (1, 4, 4), gt(100.0, 200.0, 1.0), None, false).unwrap();
        let out = resample_chips(&[src], &[(101.0, 199.0)], 1.0, 2).unwrap();
        assert_eq!(out.data, vec![5.0, 6.0, 9.0, 10.0]);
        assert_eq!(out.invalid_fraction, vec![0.0]);
    }

    #[test]
    fn downsampling_is_an_area_average() {
        let data: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let src = SourceRaster::new("s", &data, (1, 4, 4), gt(0.0, 4.0, 1.0), None, false).unwrap();
        let out = resample_chips(&[src], &[(0.0, 4.0)], 2.0, 2).unwrap();
        assert_eq!(out.data, vec![2.5, 4.5, 10.5, 12.5]);
    }

    #[test]
    fn upsampling_is_bilinear() {
        // Ramp in x: value = col.
        let data: Vec<f32> = (0..16).map(|v| (v % 4) as f32).collect();
        let src = SourceRaster::new("s", &data, (1, 4, 4), gt(0.0, 4.0, 1.0), None, false).unwrap();
        let out = resample_chips(&[src], &[(1.0, 3.0)], 0.5, 4).unwrap();
        // Centres at x = 1.25, 1.75, 2.25, 2.75 -> source coords 0.75 .. 2.25.
        assert_eq!(&out.data[0..4], &[0.75, 1.25, 1.75, 2.25]);
    }

    #[test]
    fn nodata_outside_and_zero_fill_are_invalid() {
        let mut data = vec![1f32; 16];
        data[0] = -9.0;
        let src = SourceRaster::new("s", &data, (1, 4, 4), gt(0.0, 4.0, 1.0), Some(-9.0), false).unwrap();
        // Chip half outside the raster on the left.
        let out = resample_chips(&[src], &[(-2.0, 4.0)], 1.0, 4).unwrap();
        // 8 pixels outside + the nodata pixel.
        assert!((out.invalid_fraction[0] - 9.0 / 16.0).abs() < 1e-12);
        assert!(out.data[0].is_nan() && out.data[2].is_nan() && out.data[3] == 1.0);

        let zeros = vec![0f32; 2 * 16];
        let src = SourceRaster::new("z", &zeros, (2, 4, 4), gt(0.0, 4.0, 1.0), None, true).unwrap();
        assert_eq!(
            resample_chips(&[src], &[(0.0, 4.0)], 1.0, 4).unwrap().invalid_fraction,
            vec![1.0]
        );
        let src = SourceRaster::new("z", &zeros, (2, 4, 4), gt(0.0, 4.0, 1.0), None, false).unwrap();
        assert_eq!(
            resample_chips(&[src], &[(0.0, 4.0)], 1.0, 4).unwrap().invalid_fraction,
            vec![0.0]
        );
    }

    #[test]
    fn invalid_pixels_are_shared_by_all_channels_and_averages_skip_them() {
        let a = vec![2f32, f32::NAN, 4.0, 6.0];
        let b = vec![1f32; 4];
        let sa = SourceRaster::new("a", &a, (1, 2, 2), gt(0.0, 2.0, 1.0), None, false).unwrap();
        let sb = SourceRaster::new("b", &b, (1, 2, 2), gt(0.0, 2.0, 1.0), None, false).unwrap();
        let copy = resample_chips(&[sa, sb], &[(0.0, 2.0)], 1.0, 2).unwrap();
        assert!(copy.data[1].is_nan() && copy.data[5].is_nan());
        assert_eq!(copy.invalid_fraction, vec![0.25]);
        // One 2 m pixel: 3 of 4 valid, mean of the valid ones.
        let avg = resample_chips(&[sa], &[(0.0, 2.0)], 2.0, 1).unwrap();
        assert_eq!(avg.data, vec![4.0]);
    }

    #[test]
    fn bad_arguments_name_themselves() {
        let data = vec![0f32; 3];
        let err = SourceRaster::new("sources[1]", &data, (1, 2, 2), gt(0.0, 0.0, 1.0), None, false).unwrap_err();
        assert!(err.to_string().starts_with("sources[1]:"));
        let data = vec![0f32; 4];
        let src = SourceRaster::new("s", &data, (1, 2, 2), gt(0.0, 0.0, 1.0), None, false).unwrap();
        assert!(resample_chips(&[src], &[(0.0, 0.0)], -1.0, 2)
            .unwrap_err()
            .to_string()
            .starts_with("gsd:"));
        assert!(resample_chips(&[src], &[(0.0, 0.0)], 1.0, 0)
            .unwrap_err()
            .to_string()
            .starts_with("size_px:"));
        assert!(GeoTransform::new(0.0, 0.0, 0.0, 1.0).is_err());
    }

    #[test]
    fn chip_sizes_no_memory_holds_are_errors_not_wraps_or_aborts() {
        let data = vec![1f32; 4];
        let src = SourceRaster::new("s", &data, (1, 2, 2), gt(0.0, 2.0, 1.0), None, false).unwrap();
        // 2**32 x 2**32 pixels wrapped to an empty chip (then an internal error in the binding).
        let err = resample_chips(&[src], &[(0.0, 2.0)], 1.0, 1 << 32).unwrap_err();
        assert!(matches!(err, CoreError::InvalidArgument { .. }), "{err:?}");
        assert!(err.to_string().starts_with("size_px: 1 x 4294967296 x 4294967296 values"), "{err}");
        // One chip of 2**24 x 2**24 floats: 2**50 bytes, which aborted in `vec!`.
        let err = resample_chips(&[src], &[(0.0, 2.0)], 1.0, 1 << 24).unwrap_err();
        assert!(matches!(err, CoreError::OutOfMemory { .. }), "{err:?}");
        assert!(err.to_string().starts_with("origins: 1 x 1 x 16777216 x 16777216 values need 1.0 PiB"), "{err}");
        // No chips: nothing to allocate, whatever their size.
        assert_eq!(resample_chips(&[src], &[], 1.0, 1 << 24).unwrap().data.len(), 0);
    }

    #[test]
    fn area_taps_outside_the_source_are_left_out() {
        // A chip pixel of 1e12 source pixels over a 4-pixel source: 4 taps, not 1e12.
        let taps = axis_taps(-5e11, 1e12, 1, 4, 10).unwrap();
        assert_eq!(taps.of(0).iter().map(|t| t.index).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        assert_eq!(taps.of(0).iter().map(|t| t.offset).collect::<Vec<_>>(), [0, 10, 20, 30].map(Some));
        // Bilinear taps may fall outside: they have no offset.
        let taps = axis_taps(-1.0, 0.5, 2, 4, 10).unwrap();
        assert_eq!(taps.of(0).iter().map(|t| (t.index, t.offset)).collect::<Vec<_>>(), vec![(-2, None), (-1, None)]);
        let data = vec![2f32; 4];
        let src = SourceRaster::new("s", &data, (1, 2, 2), gt(0.0, 2.0, 1.0), None, false).unwrap();
        let out = resample_chips(&[src], &[(-1e12, 1e12)], 2e12, 1).unwrap();
        assert!(out.data[0].is_nan() && out.invalid_fraction == vec![1.0]);
    }
}
