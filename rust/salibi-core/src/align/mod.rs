//! Tile alignment: cut chips of one ground footprint out of several rasters.
//!
//! - [`tiles`]: the chip grid over the common footprint of the inputs, snapped so that every
//!   chip is a whole number of pixels at every modality's GSD;
//! - [`resample`]: each source raster (already on the target CRS, north-up) resampled onto
//!   each chip's pixel grid — area average when downsampling, bilinear otherwise — with the
//!   fraction of invalid (nodata / NaN / zero-fill) pixels per chip.
//!
//! CRS reprojection is not done here: GDAL (through rasterio) brings sources onto the target
//! CRS first; this module only deals with axis-aligned grids in one projected CRS.

pub mod resample;
pub mod tiles;

pub use resample::{resample_chips, validity_mask, ChipStack, GeoTransform, SourceRaster};
pub use tiles::{common_pixel_unit, pixels_per_tile, plan_tile_grid, TileGrid};
