//! `salibi._core` bindings of the alignment core: the chip grid and chip resampling.

use numpy::ndarray::{Array2, Array4, Ix2, Ix3};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArray4, PyArrayMethods, PyReadonlyArray3, PyUntypedArrayMethods};
use pyo3::prelude::*;

use salibi_core::align::{self, GeoTransform, SourceRaster, TileGrid};
use salibi_core::CoreError;

use crate::arrays::ArraySpec;
use crate::error::{detached, internal, Result};

/// Square chips over the common footprint; chip `i` is row-major.
#[pyclass(name = "TileGrid", module = "salibi._core", frozen)]
struct PyTileGrid {
    inner: TileGrid,
}

#[pymethods]
impl PyTileGrid {
    /// x of the grid's left edge, metres.
    #[getter]
    fn left(&self) -> f64 {
        self.inner.left
    }

    /// y of the grid's top edge, metres.
    #[getter]
    fn top(&self) -> f64 {
        self.inner.top
    }

    #[getter]
    fn rows(&self) -> usize {
        self.inner.rows
    }

    #[getter]
    fn cols(&self) -> usize {
        self.inner.cols
    }

    #[getter]
    fn tile_size(&self) -> f64 {
        self.inner.tile_size
    }

    /// Ground length that is a whole number of pixels at every GSD (the snapping step).
    #[getter]
    fn unit(&self) -> f64 {
        self.inner.unit
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// `(rows * cols, 4)` float64 `(min_x, min_y, max_x, max_y)` of every chip, row-major.
    fn bounds<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyArray2<f64>>> {
        let flat = self.inner.all_bounds()?;
        Ok(Array2::from_shape_vec((self.inner.len(), 4), flat).map_err(internal)?.into_pyarray(py))
    }

    /// `(min_x, min_y, max_x, max_y)` of the whole grid.
    fn extent(&self) -> (f64, f64, f64, f64) {
        let [a, b, c, d] = self.inner.extent();
        (a, b, c, d)
    }

    fn __repr__(&self) -> String {
        let g = &self.inner;
        format!(
            "TileGrid(rows={}, cols={}, tile_size={:?}, left={:?}, top={:?}, unit={:?})",
            g.rows, g.cols, g.tile_size, g.left, g.top, g.unit
        )
    }
}

/// The largest grid of `tile_size_m` chips inside `footprint` `(min_x, min_y, max_x, max_y)`,
/// a whole number of pixels at every `(name, gsd)` of `gsds`, corners on `anchor`'s lattice.
#[pyfunction]
#[pyo3(signature = (footprint, tile_size_m, gsds, anchor = (0.0, 0.0)))]
fn plan_tile_grid(
    footprint: (f64, f64, f64, f64),
    tile_size_m: f64,
    gsds: Vec<(String, f64)>,
    anchor: (f64, f64),
) -> Result<PyTileGrid> {
    let named: Vec<(&str, f64)> = gsds.iter().map(|(n, g)| (n.as_str(), *g)).collect();
    let (a, b, c, d) = footprint;
    Ok(PyTileGrid {
        inner: align::plan_tile_grid([a, b, c, d], tile_size_m, &named, anchor)?,
    })
}

/// `sources[i]` as a read-only float32 `(bands, height, width)` array, or an error naming it.
fn float32_volume<'py>(i: usize, object: &Bound<'py, PyAny>) -> Result<PyReadonlyArray3<'py, f32>> {
    let name = format!("sources[{i}]");
    let spec = ArraySpec {
        name: &name,
        dtype: "float32",
        axes: &["bands", "height", "width"],
        hint: " (use .astype(numpy.float32))",
    };
    Ok(spec.typed::<f32, Ix3>(object)?.try_readonly()?)
}

/// Resample the `(bands, height, width)` float32 `sources` of one modality (north-up, on the
/// target CRS, `transforms[i] = (left, top, pixel_width, pixel_height)`) onto `size_px` square
/// chips of `gsd` m/px with top-left corners `origins` `(n, 2)`. Returns the `(n, channels,
/// size_px, size_px)` float32 chips (NaN where invalid) and the `(n,)` invalid fractions.
#[pyfunction]
#[pyo3(signature = (sources, transforms, origins, gsd, size_px, nodata = None, zero_fill = None))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn resample_chips<'py>(
    py: Python<'py>,
    sources: Vec<Bound<'py, PyAny>>,
    transforms: Vec<(f64, f64, f64, f64)>,
    origins: Bound<'py, PyAny>,
    gsd: f64,
    size_px: i64,
    nodata: Option<Vec<Option<f64>>>,
    zero_fill: Option<Vec<bool>>,
) -> Result<(Bound<'py, PyArray4<f32>>, Bound<'py, PyArray1<f64>>)> {
    let n = sources.len();
    let same_length = |name: &str, len: usize| -> Result<()> {
        if len == n {
            Ok(())
        } else {
            Err(CoreError::invalid(name, format!("has {len} entries for {n} sources")).into())
        }
    };
    same_length("transforms", transforms.len())?;
    let nodata = nodata.unwrap_or_else(|| vec![None; n]);
    same_length("nodata", nodata.len())?;
    let zero_fill = zero_fill.unwrap_or_else(|| vec![false; n]);
    same_length("zero_fill", zero_fill.len())?;
    let origins = ArraySpec { name: "origins", dtype: "float64", axes: &["n", "2"], hint: "" }
        .typed::<f64, Ix2>(&origins)?
        .try_readonly()?;
    if origins.shape()[1] != 2 {
        return Err(CoreError::invalid("origins", format!("expected shape (n, 2), got {:?}", origins.shape())).into());
    }
    let origin_values: Vec<(f64, f64)> = origins.as_array().rows().into_iter().map(|r| (r[0], r[1])).collect();

    let arrays = sources
        .iter()
        .enumerate()
        .map(|(i, s)| float32_volume(i, s))
        .collect::<Result<Vec<_>>>()?;
    let mut rasters = Vec::with_capacity(n);
    for (i, array) in arrays.iter().enumerate() {
        let name = format!("sources[{i}]");
        let data = array
            .as_slice()
            .map_err(|_| CoreError::invalid(&name, "must be a C-contiguous array (use numpy.ascontiguousarray)"))?;
        let shape = array.shape();
        let (left, top, pw, ph) = transforms[i];
        let transform = GeoTransform::new(left, top, pw, ph)
            .map_err(|e| CoreError::invalid(format!("transforms[{i}]"), e.to_string()))?;
        let raster = SourceRaster::new(
            &name,
            data,
            (shape[0], shape[1], shape[2]),
            transform,
            nodata[i].map(|v| v as f32),
            zero_fill[i],
        )?;
        rasters.push(raster);
    }
    let stack = detached(py, move || {
        align::resample_chips(&rasters, &origin_values, gsd, size_px)
    })?;
    let shape = (stack.chips, stack.channels, stack.size, stack.size);
    let chips = Array4::from_shape_vec(shape, stack.data).map_err(internal)?.into_pyarray(py);
    Ok((chips, PyArray1::from_vec(py, stack.invalid_fraction)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTileGrid>()?;
    m.add_function(wrap_pyfunction!(plan_tile_grid, m)?)?;
    m.add_function(wrap_pyfunction!(resample_chips, m)?)?;
    Ok(())
}
