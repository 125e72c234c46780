//! The one error type of the binding and the one way long work runs.
//!
//! Every binding function returns [`Result`]: `?` takes core errors and Python errors alike,
//! and pyo3 raises the matching exception: [`CoreError::InvalidArgument`] as `ValueError`
//! (sizes no memory could hold among them), [`CoreError::WrongType`] as `TypeError`,
//! [`CoreError::OutOfMemory`] (an allocation the machine refused) as `MemoryError`, a Python
//! error as itself, and a bug (a panic in the core, or a broken invariant of the binding) as
//! `RuntimeError`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::{PyMemoryError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::{PyErr, Python};

use salibi_core::CoreError;

pub(crate) enum Error {
    Core(CoreError),
    Python(PyErr),
}

pub(crate) type Result<T> = std::result::Result<T, Error>;

impl From<CoreError> for Error {
    fn from(e: CoreError) -> Self {
        Error::Core(e)
    }
}

impl From<PyErr> for Error {
    fn from(e: PyErr) -> Self {
        Error::Python(e)
    }
}

/// A numpy array that Rust code elsewhere holds mutably borrowed.
impl From<numpy::BorrowError> for Error {
    fn from(e: numpy::BorrowError) -> Self {
        Error::Python(e.into())
    }
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        match e {
            Error::Core(err @ CoreError::InvalidArgument { .. }) => PyValueError::new_err(err.to_string()),
            Error::Core(err @ CoreError::WrongType { .. }) => PyTypeError::new_err(err.to_string()),
            Error::Core(err @ CoreError::OutOfMemory { .. }) => PyMemoryError::new_err(err.to_string()),
            Error::Python(err) => err,
        }
    }
}

/// A bug, not a bad argument: raised as `RuntimeError` asking for a report.
pub(crate) fn internal(what: impl std::fmt::Display) -> Error {
    Error::Python(PyRuntimeError::new_err(format!("internal error in salibi core (please report): {what}")))
}

/// Run core work with the GIL released; a panic becomes a `RuntimeError`, never an abort.
pub(crate) fn detached<T: Send>(
    py: Python<'_>,
    work: impl FnOnce() -> salibi_core::Result<T> + Send,
) -> Result<T> {
    let outcome = py.detach(|| catch_unwind(AssertUnwindSafe(work))).map_err(|panic| {
        internal(
            panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into()),
        )
    })?;
    Ok(outcome?)
}
