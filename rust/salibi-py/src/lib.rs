//! `salibi._core`: thin PyO3 bindings over salibi-core.
//!
//! Arrays cross without copies: cached tables are handed to numpy as read-only views of the
//! Rust buffer, kept alive by a small owner object. Long work runs with the GIL released.

mod align;
mod arrays;
mod error;

use numpy::ndarray::Array2;
use numpy::{PyArray1, PyArray2, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use salibi_core::{cache, table, KeptIndices, PatchGrid};

use crate::arrays::{owned_to_numpy, shared_to_numpy, ArraySpec, TableOwner};
use crate::error::{detached, internal, Result};

/// `PatchGrid`'s constructor arguments: rows, cols, patch_px, gsd, origin.
type GridArgs = (usize, usize, usize, f64, (f64, f64));

/// A chip cut into square patches, placed on the ground.
#[pyclass(name = "PatchGrid", module = "salibi._core", frozen)]
#[derive(Clone)]
struct PyPatchGrid {
    inner: PatchGrid,
}

#[pymethods]
impl PyPatchGrid {
    #[new]
    #[pyo3(signature = (rows, cols, patch_px, gsd, origin = (0.0, 0.0)))]
    fn new(rows: i64, cols: i64, patch_px: i64, gsd: f64, origin: (f64, f64)) -> Result<Self> {
        Ok(PyPatchGrid { inner: PatchGrid::new(rows, cols, patch_px, gsd, origin)? })
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
    fn patch_px(&self) -> usize {
        self.inner.patch_px
    }

    #[getter]
    fn gsd(&self) -> f64 {
        self.inner.gsd
    }

    #[getter]
    fn origin(&self) -> (f64, f64) {
        self.inner.origin
    }

    #[getter]
    fn num_patches(&self) -> usize {
        self.inner.num_patches()
    }

    /// Ground length of one patch side, metres.
    #[getter]
    fn footprint(&self) -> f64 {
        self.inner.footprint()
    }

    /// Patch centres, `(num_patches, 2)` float64 `(x, y)` in metres, row-major.
    fn centres<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyArray2<f64>>> {
        let flat = self.inner.centres()?;
        let shape = (self.inner.num_patches(), 2);
        Ok(PyArray2::from_owned_array(py, Array2::from_shape_vec(shape, flat).map_err(internal)?))
    }

    fn __repr__(&self) -> String {
        let g = &self.inner;
        format!(
            "PatchGrid(rows={}, cols={}, patch_px={}, gsd={:?}, origin=({:?}, {:?}))",
            g.rows, g.cols, g.patch_px, g.gsd, g.origin.0, g.origin.1
        )
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<PyPatchGrid>().map(|o| o.get().inner.key() == self.inner.key()).unwrap_or(false)
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.inner.key().hash(&mut h);
        h.finish()
    }

    /// Pickle support: the class and the constructor's arguments.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> (Bound<'py, PyAny>, GridArgs) {
        let g = slf.get().inner;
        (slf.get_type().into_any(), (g.rows, g.cols, g.patch_px, g.gsd, g.origin))
    }
}

/// ALiBi slopes of Press et al. for `heads` heads, float32.
#[pyfunction]
fn alibi_slopes(py: Python<'_>, heads: i64) -> Result<Bound<'_, PyArray1<f32>>> {
    Ok(PyArray1::from_vec(py, salibi_core::alibi_slopes(heads)?))
}

/// `(Nq, Nk)` ground distance between patch centres divided by `ref_length` (cached, read-only).
#[pyfunction]
#[pyo3(signature = (query, key, ref_length = None))]
fn ground_distance_table<'py>(
    py: Python<'py>,
    query: &PyPatchGrid,
    key: &PyPatchGrid,
    ref_length: Option<f64>,
) -> Result<Bound<'py, PyArrayDyn<f32>>> {
    let (q, k) = (query.inner, key.inner);
    shared_to_numpy(py, detached(py, move || cache::ground_distance_table(&q, &k, ref_length))?)
}

/// `(heads, Nq, Nk)` Scale-ALiBi bias `-m_h * distance / ref_length` (cached, read-only).
#[pyfunction]
#[pyo3(signature = (query, key, heads, ref_length = None))]
fn scale_alibi_bias<'py>(
    py: Python<'py>,
    query: &PyPatchGrid,
    key: &PyPatchGrid,
    heads: i64,
    ref_length: Option<f64>,
) -> Result<Bound<'py, PyArrayDyn<f32>>> {
    let (q, k) = (query.inner, key.inner);
    shared_to_numpy(py, detached(py, move || cache::scale_alibi_bias(&q, &k, heads, ref_length))?)
}

/// A `(batch, kept)` int32 or int64 index array, copied out as i64 with its shape.
fn kept_indices(name: &str, object: &Bound<'_, PyAny>) -> Result<(Vec<i64>, usize, usize)> {
    let spec = ArraySpec { name, dtype: "int32 or int64", axes: &["batch", "kept"], hint: "" };
    let array = spec.untyped(object)?;
    let (batch, per_row) = (array.shape()[0], array.shape()[1]);
    let values: Vec<i64> = if let Ok(a) = object.cast::<PyArray2<i64>>() {
        a.try_readonly()?.as_array().iter().copied().collect()
    } else if let Ok(a) = object.cast::<PyArray2<i32>>() {
        a.try_readonly()?.as_array().iter().map(|&v| i64::from(v)).collect()
    } else {
        return Err(spec.wrong_dtype(array).into());
    };
    Ok((values, batch, per_row))
}

fn masked<'py>(
    py: Python<'py>,
    query: &PyPatchGrid,
    key: &PyPatchGrid,
    heads: Option<i64>,
    query_idx: &Bound<'py, PyAny>,
    key_idx: &Bound<'py, PyAny>,
    ref_length: Option<f64>,
) -> Result<Bound<'py, PyArrayDyn<f32>>> {
    let (q_values, q_batch, q_rows) = kept_indices("query_idx", query_idx)?;
    let (k_values, k_batch, k_rows) = kept_indices("key_idx", key_idx)?;
    let (q, k) = (query.inner, key.inner);
    let table = detached(py, move || {
        table::masked_table(
            &q,
            &k,
            &KeptIndices { name: "query_idx", values: &q_values, batch: q_batch, per_row: q_rows },
            &KeptIndices { name: "key_idx", values: &k_values, batch: k_batch, per_row: k_rows },
            heads,
            ref_length,
        )
    })?;
    owned_to_numpy(py, table)
}

/// `(B, kq, kk)` distances between the kept query and key patches of each batch element.
#[pyfunction]
#[pyo3(signature = (query, key, query_idx, key_idx, ref_length = None))]
fn masked_distance_table<'py>(
    py: Python<'py>,
    query: &PyPatchGrid,
    key: &PyPatchGrid,
    query_idx: &Bound<'py, PyAny>,
    key_idx: &Bound<'py, PyAny>,
    ref_length: Option<f64>,
) -> Result<Bound<'py, PyArrayDyn<f32>>> {
    masked(py, query, key, None, query_idx, key_idx, ref_length)
}

/// `(B, heads, kq, kk)` Scale-ALiBi bias between the kept patches of each batch element.
#[pyfunction]
#[pyo3(signature = (query, key, heads, query_idx, key_idx, ref_length = None))]
fn masked_scale_alibi_bias<'py>(
    py: Python<'py>,
    query: &PyPatchGrid,
    key: &PyPatchGrid,
    heads: i64,
    query_idx: &Bound<'py, PyAny>,
    key_idx: &Bound<'py, PyAny>,
    ref_length: Option<f64>,
) -> Result<Bound<'py, PyArrayDyn<f32>>> {
    salibi_core::error::require_count("heads", heads)?;
    masked(py, query, key, Some(heads), query_idx, key_idx, ref_length)
}

/// Table cache statistics: hits, misses, entries, bytes, max_bytes.
#[pyfunction]
fn cache_info(py: Python<'_>) -> Result<Bound<'_, PyDict>> {
    let s = py.detach(|| cache::global().stats()); // waits for the cache lock without the GIL
    let d = PyDict::new(py);
    d.set_item("hits", s.hits)?;
    d.set_item("misses", s.misses)?;
    d.set_item("entries", s.entries)?;
    d.set_item("bytes", s.bytes)?;
    d.set_item("max_bytes", s.max_bytes)?;
    Ok(d)
}

/// Drop all cached tables and reset the counters; optionally set a new byte limit.
#[pyfunction]
#[pyo3(signature = (max_bytes = None))]
fn cache_clear(py: Python<'_>, max_bytes: Option<usize>) {
    py.detach(|| cache::global().clear(max_bytes)); // and frees the tables without it
}

/// How this extension was built: version, profile, worker threads.
#[pyfunction]
fn build_info(py: Python<'_>) -> Result<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("version", env!("CARGO_PKG_VERSION"))?;
    d.set_item("profile", if cfg!(debug_assertions) { "debug" } else { "release" })?;
    d.set_item("threads", rayon::current_num_threads())?;
    d.set_item("target", std::env::consts::ARCH)?;
    Ok(d)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<PyPatchGrid>()?;
    m.add_class::<TableOwner>()?;
    m.add_function(wrap_pyfunction!(alibi_slopes, m)?)?;
    m.add_function(wrap_pyfunction!(ground_distance_table, m)?)?;
    m.add_function(wrap_pyfunction!(scale_alibi_bias, m)?)?;
    m.add_function(wrap_pyfunction!(masked_distance_table, m)?)?;
    m.add_function(wrap_pyfunction!(masked_scale_alibi_bias, m)?)?;
    m.add_function(wrap_pyfunction!(cache_info, m)?)?;
    m.add_function(wrap_pyfunction!(cache_clear, m)?)?;
    m.add_function(wrap_pyfunction!(build_info, m)?)?;
    align::register(m)?;
    Ok(())
}
