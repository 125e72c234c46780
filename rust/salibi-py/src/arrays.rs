//! Array arguments and results: the one check of a numpy argument's type, dimensions and
//! dtype, and the zero-copy hand-over of core tables to numpy.

use std::sync::Arc;

use numpy::ndarray::{ArrayViewD, Dimension, IxDyn};
use numpy::{Element, PyArray, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;

use salibi_core::size::Size;
use salibi_core::{CoreError, Table};

use crate::error::{internal, Result};

/// What an array argument must be, in the words of its error messages.
pub(crate) struct ArraySpec<'a> {
    /// The argument as the caller spelled it, e.g. `"sources[0]"`.
    pub name: &'a str,
    /// Accepted dtypes, e.g. `"float32"` or `"int32 or int64"`.
    pub dtype: &'a str,
    /// The axes, e.g. `&["batch", "kept"]`.
    pub axes: &'a [&'a str],
    /// Appended to the wrong-dtype message, e.g. `" (use .astype(numpy.float32))"`.
    pub hint: &'a str,
}

impl ArraySpec<'_> {
    /// `object` as a numpy array with one dimension per axis: a `TypeError` naming the
    /// argument when it is no numpy array, a `ValueError` when its dimensions differ.
    pub(crate) fn untyped<'a, 'py>(&self, object: &'a Bound<'py, PyAny>) -> Result<&'a Bound<'py, PyUntypedArray>> {
        let axes = format!("({})", self.axes.join(", "));
        let array = object.cast::<PyUntypedArray>().map_err(|_| {
            let type_name = object.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
            CoreError::wrong_type(self.name, format!("expected a numpy {} array {axes}, got {type_name}", self.dtype))
        })?;
        if array.ndim() != self.axes.len() {
            return Err(CoreError::invalid(
                self.name,
                format!("expected {} dimensions {axes}, got {}", self.axes.len(), array.ndim()),
            )
            .into());
        }
        Ok(array)
    }

    /// The `TypeError` for an array of none of the accepted dtypes.
    pub(crate) fn wrong_dtype(&self, array: &Bound<'_, PyUntypedArray>) -> CoreError {
        let dtype = array.dtype().str().map(|s| s.to_string()).unwrap_or_else(|_| "?".into());
        CoreError::wrong_type(self.name, format!("expected dtype {}, got {dtype}{}", self.dtype, self.hint))
    }

    /// `object` as a numpy array of element type `T` with `D`'s dimensions (which must be
    /// `axes.len()`), or the error naming the argument.
    pub(crate) fn typed<'py, T: Element, D: Dimension>(
        &self,
        object: &Bound<'py, PyAny>,
    ) -> Result<Bound<'py, PyArray<T, D>>> {
        debug_assert_eq!(D::NDIM, Some(self.axes.len()), "ArraySpec axes and dimension type");
        let array = self.untyped(object)?;
        Ok(object.cast::<PyArray<T, D>>().map_err(|_| self.wrong_dtype(array))?.clone())
    }
}

/// Keeps a table alive while numpy arrays view it.
#[pyclass(module = "salibi._core", frozen)]
pub(crate) struct TableOwner {
    table: Arc<Table>,
}

/// A cached table (shared with the cache and with every earlier caller) as a read-only numpy
/// array, without copying.
pub(crate) fn shared_to_numpy(py: Python<'_>, table: Arc<Table>) -> Result<Bound<'_, PyArrayDyn<f32>>> {
    let array = view_in_numpy(py, table)?;
    array.try_readwrite()?.make_nonwriteable();
    Ok(array)
}

/// A table nobody else holds as a writeable numpy array, without copying.
pub(crate) fn owned_to_numpy(py: Python<'_>, table: Table) -> Result<Bound<'_, PyArrayDyn<f32>>> {
    view_in_numpy(py, Arc::new(table))
}

fn view_in_numpy(py: Python<'_>, table: Arc<Table>) -> Result<Bound<'_, PyArrayDyn<f32>>> {
    let owner = Bound::new(py, TableOwner { table })?;
    let table = &owner.get().table;
    let size = Size::of::<f32>("table", table.shape()).map_err(internal)?;
    if size.len != table.as_slice().len() {
        return Err(internal("table shape does not match its data"));
    }
    // SAFETY: the pointer is valid for the shape's product of initialised floats (checked
    // above), laid out row-major, and comes from the buffer's own allocation pointer rather
    // than a shared slice, so numpy may write through it when the array is writeable (only
    // for `owned_to_numpy`'s tables, which nothing else references).
    let view = unsafe { ArrayViewD::from_shape_ptr(IxDyn(table.shape()), table.as_ptr()) };
    // SAFETY: `owner` becomes the array's base object and keeps the Arc (and so the buffer,
    // which is never reallocated) alive for as long as the array exists.
    Ok(unsafe { PyArrayDyn::borrow_from_array(&view, owner.clone().into_any()) })
}
