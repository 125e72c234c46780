//! `salibi._core`: thin PyO3 bindings over salibi-core.
//!
//! Arrays cross without copies: cached tables are handed to numpy as read-only views of the
//! Rust buffer, kept alive by a small owner object. Long work runs with the GIL released.

mod align;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use numpy::ndarray::{ArrayViewD, IxDyn};
use numpy::{PyArray1, PyArray2, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use salibi_core::{cache, table, CoreError, KeptIndices, PatchGrid, Table};

/// The one conversion of core errors into Python exceptions.
struct PyCoreError(CoreError);

impl From<CoreError> for PyCoreError {
    fn from(e: CoreError) -> Self {
        PyCoreError(e)
    }
}

impl From<PyCoreError> for PyErr {
    fn from(e: PyCoreError) -> PyErr {
        match e.0 {
            err @ CoreError::InvalidArgument { .. } => PyValueError::new_err(err.to_string()),
            err @ CoreError::WrongType { .. } => PyTypeError::new_err(err.to_string()),
        }
    }
}

type CoreResult<T> = Result<T, PyCoreError>;

/// Run core work without the GIL; a panic (a bug) becomes a RuntimeError, never an abort.
fn detached<T: Send>(py: Python<'_>, work: impl FnOnce() -> salibi_core::Result<T> + Send) -> PyResult<T> {
    py.detach(|| catch_unwind(AssertUnwindSafe(work)))
        .map_err(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            PyRuntimeError::new_err(format!("internal error in salibi core (please report): {what}"))
        })?
        .map_err(|e| PyCoreError(e).into())
}

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
    fn new(rows: i64, cols: i64, patch_px: i64, gsd: f64, origin: (f64, f64)) -> CoreResult<Self> {
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
    fn centres<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray2<f64>> {
        let n = self.inner.num_patches();
        let flat: Vec<f64> = (0..n)
            .flat_map(|i| {
                let (x, y) = self.inner.centre(i);
                [x, y]
            })
            .collect();
        numpy::ndarray::Array2::from_shape_vec((n, 2), flat)
            .map(|a| PyArray2::from_owned_array(py, a))
            .expect("shape matches")
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

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (usize, usize, usize, f64, (f64, f64)))> {
        let g = slf.get().inner;
        Ok((slf.get_type().into_any(), (g.rows, g.cols, g.patch_px, g.gsd, g.origin)))
    }
}

/// Keeps a table alive while numpy arrays view it.
#[pyclass(module = "salibi._core", frozen)]
struct TableOwner {
    table: Arc<Table>,
}

/// Hand `table` to numpy without copying. Cached tables are shared, so they are read-only.
fn to_numpy<'py>(py: Python<'py>, table: Arc<Table>, writeable: bool) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let owner = Bound::new(py, TableOwner { table })?;
    let table = &owner.get().table;
    let view = ArrayViewD::from_shape(IxDyn(table.shape()), table.as_slice()).expect("table shape matches its data");
    // SAFETY: `owner` becomes the array's base object and keeps the Arc (and so the buffer,
    // which is never reallocated) alive for as long as the array exists.
    let array = unsafe { PyArrayDyn::borrow_from_array(&view, owner.clone().into_any()) };
    if !writeable {
        array.readwrite().make_nonwriteable();
    }
    Ok(array)
}

/// ALiBi slopes of Press et al. for `heads` heads, float32.
#[pyfunction]
fn alibi_slopes(py: Python<'_>, heads: i64) -> CoreResult<Bound<'_, PyArray1<f32>>> {
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
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let (q, k) = (query.inner, key.inner);
    let table = detached(py, move || cache::ground_distance_table(&q, &k, ref_length))?;
    to_numpy(py, table, false)
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
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let (q, k) = (query.inner, key.inner);
    let table = detached(py, move || cache::scale_alibi_bias(&q, &k, heads, ref_length))?;
    to_numpy(py, table, false)
}

/// A `(batch, kept)` integer index array, copied out as i64 with its shape.
fn kept_indices(name: &str, array: &Bound<'_, PyAny>) -> CoreResult<(Vec<i64>, usize, usize)> {
    let untyped = array.cast::<PyUntypedArray>().map_err(|_| {
        let type_name = array.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
        CoreError::wrong_type(name, format!("expected a numpy integer array of shape (batch, kept), got {type_name}"))
    })?;
    if untyped.ndim() != 2 {
        return Err(CoreError::invalid(
            name,
            format!("expected shape (batch, kept), got an array with {} dimension(s)", untyped.ndim()),
        )
        .into());
    }
    let (batch, per_row) = (untyped.shape()[0], untyped.shape()[1]);
    let values: Vec<i64> = if let Ok(a) = array.cast::<PyArray2<i64>>() {
        a.to_vec().unwrap_or_else(|_| a.to_owned_array().iter().copied().collect())
    } else if let Ok(a) = array.cast::<PyArray2<i32>>() {
        a.to_owned_array().iter().map(|&v| v as i64).collect()
    } else {
        let dtype = untyped.dtype().str().map(|s| s.to_string()).unwrap_or_else(|_| "?".into());
        return Err(CoreError::wrong_type(name, format!("expected an int32 or int64 array, got dtype {dtype}")).into());
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
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
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
    to_numpy(py, Arc::new(table), true)
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
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
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
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    salibi_core::error::require_count("heads", heads).map_err(PyCoreError)?;
    masked(py, query, key, Some(heads), query_idx, key_idx, ref_length)
}

/// Table cache statistics: hits, misses, entries, bytes, max_bytes.
#[pyfunction]
fn cache_info(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let s = cache::global().stats();
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
fn cache_clear(max_bytes: Option<usize>) {
    cache::global().clear(max_bytes);
}

/// How this extension was built: version, profile, worker threads.
#[pyfunction]
fn build_info(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
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
