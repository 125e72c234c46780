//! Property tests of the alignment core on random geometries.

use proptest::prelude::*;
use salibi_core::align::{plan_tile_grid, resample_chips, GeoTransform, SourceRaster};

proptest! {
    /// Chips lie inside the footprint, on the anchor lattice, are whole pixels at every GSD,
    /// and no further row or column would fit.
    #[test]
    fn tile_grid_is_inside_snapped_and_maximal(
        x0 in -1e6f64..1e6, y0 in -1e6f64..1e6, w in 50.0f64..5000.0, h in 50.0f64..5000.0,
        gsd_a in prop::sample::select(vec![0.5, 1.0, 2.5, 5.0]), factor in 1usize..5, px in 1usize..8,
        ax in -1e5f64..1e5, ay in -1e5f64..1e5,
    ) {
        let gsd_b = gsd_a * factor as f64;
        let tile = gsd_b * px as f64 * 2.0;
        let footprint = [x0, y0, x0 + w, y0 + h];
        match plan_tile_grid(footprint, tile, &[("a", gsd_a), ("b", gsd_b)], (ax, ay)) {
            Ok(g) => {
                let [l, b, r, t] = g.extent();
                let eps = 1e-6 * (1.0 + x0.abs().max(y0.abs()));
                prop_assert!(l >= x0 - eps && b >= y0 - eps && r <= x0 + w + eps && t <= y0 + h + eps);
                for gsd in [gsd_a, gsd_b] {
                    let n = tile / gsd;
                    prop_assert!((n - n.round()).abs() < 1e-9);
                    let k = (g.left - ax) / gsd;
                    prop_assert!((k - k.round()).abs() < 1e-6, "left {} not on the {} lattice", g.left, gsd);
                    let k = (ay - g.top) / gsd;
                    prop_assert!((k - k.round()).abs() < 1e-6);
                }
                prop_assert!(r + tile > x0 + w - eps || l - g.unit < x0 - eps);
                prop_assert!(b - tile < y0 + eps || t + g.unit > y0 + h + eps);
            }
            Err(e) => {
                prop_assert!(e.to_string().contains("smaller than one"), "{}", e);
                // Snapping to the lattice (unit = gsd_b here) loses less than one unit a side.
                prop_assert!(w.min(h) < tile + gsd_b);
            }
        }
    }

    /// At the native GSD on the source's own pixel lattice, a chip is an exact copy.
    #[test]
    fn aligned_chip_is_a_copy(
        bands in 1usize..4, hgt in 4usize..20, wid in 4usize..20, px in 1.0f64..30.0,
        left in -1e6f64..1e6, top in -1e6f64..1e6, seed in 0u32..1000,
    ) {
        let data: Vec<f32> = (0..bands * hgt * wid).map(|i| ((i as u32).wrapping_mul(2654435761u32) ^ seed) as f32).collect();
        let src = SourceRaster::new("s", &data, (bands, hgt, wid), GeoTransform::new(left, top, px, px).unwrap(), None, false).unwrap();
        let size = 3.min(hgt).min(wid);
        let (r0, c0) = (hgt - size, wid - size);
        let out = resample_chips(&[src], &[(left + c0 as f64 * px, top - r0 as f64 * px)], px, size as i64).unwrap();
        for b in 0..bands {
            for r in 0..size {
                for c in 0..size {
                    prop_assert_eq!(out.data[(b * size + r) * size + c], data[(b * hgt + r0 + r) * wid + c0 + c]);
                }
            }
        }
        prop_assert_eq!(out.invalid_fraction[0], 0.0);
    }

    /// Integer-factor area averaging preserves the mean of the area it covers.
    #[test]
    fn area_average_preserves_the_mean(factor in 1usize..6, size in 1usize..6, seed in 0u32..1000) {
        let n = factor * size;
        let data: Vec<f32> = (0..n * n).map(|i| (((i as u32).wrapping_mul(747796405) ^ seed) % 1000) as f32).collect();
        let src = SourceRaster::new("s", &data, (1, n, n), GeoTransform::new(0.0, 0.0, 1.0, 1.0).unwrap(), None, false).unwrap();
        let out = resample_chips(&[src], &[(0.0, 0.0)], factor as f64, size as i64).unwrap();
        let mean_in: f64 = data.iter().map(|&v| v as f64).sum::<f64>() / (n * n) as f64;
        let mean_out: f64 = out.data.iter().map(|&v| v as f64).sum::<f64>() / (size * size) as f64;
        prop_assert!((mean_in - mean_out).abs() < 1e-3 * mean_in.max(1.0));
    }

    /// Bilinear upsampling reproduces a linear ramp wherever the chip is inside the source.
    #[test]
    fn bilinear_is_exact_on_a_plane(a in -5.0f32..5.0, b in -5.0f32..5.0, up in 2usize..5, off in 0.0f64..2.0) {
        let n = 12;
        let data: Vec<f32> = (0..n * n).map(|i| a * (i % n) as f32 + b * (i / n) as f32).collect();
        let src = SourceRaster::new("s", &data, (1, n, n), GeoTransform::new(0.0, n as f64, 1.0, 1.0).unwrap(), None, false).unwrap();
        let gsd = 1.0 / up as f64;
        let size = 4 * up;
        let origin = (1.0 + off, n as f64 - 1.0 - off);
        let out = resample_chips(&[src], &[origin], gsd, size as i64).unwrap();
        for r in 0..size {
            for c in 0..size {
                let x = origin.0 + (c as f64 + 0.5) * gsd - 0.5;
                let y = (n as f64 - origin.1) + (r as f64 + 0.5) * gsd - 0.5;
                let expect = a as f64 * x + b as f64 * y;
                let got = out.data[r * size + c] as f64;
                prop_assert!((got - expect).abs() < 1e-3 * (1.0 + expect.abs()), "{} vs {}", got, expect);
            }
        }
    }

    /// The invalid fraction is the share of the chip outside the source (plus nodata).
    #[test]
    fn invalid_fraction_counts_pixels_outside(shift in 0usize..9) {
        let data = vec![1f32; 64];
        let src = SourceRaster::new("s", &data, (1, 8, 8), GeoTransform::new(0.0, 8.0, 1.0, 1.0).unwrap(), None, false).unwrap();
        let out = resample_chips(&[src], &[(shift as f64, 8.0)], 1.0, 8).unwrap();
        prop_assert!((out.invalid_fraction[0] - shift as f64 / 8.0).abs() < 1e-12);
        let nan_count = out.data.iter().filter(|v| v.is_nan()).count();
        prop_assert_eq!(nan_count, shift * 8);
    }
}
