//! The one error type of the core. The binding crate maps each variant to one Python
//! exception class, so messages here are written for the person who called the function.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum CoreError {
    /// An argument has the right type but a value the function cannot use
    /// (Python: `ValueError`). `name` is the argument as the caller spelled it.
    #[error("{name}: {reason}")]
    InvalidArgument { name: String, reason: String },

    /// An argument has the wrong type or element type (Python: `TypeError`).
    #[error("{name}: {reason}")]
    WrongType { name: String, reason: String },

    /// A buffer of a size that can be held but that the allocator refused (Python:
    /// `MemoryError`). Sizes no memory could hold are [`CoreError::InvalidArgument`].
    #[error("{name}: {reason}")]
    OutOfMemory { name: String, reason: String },
}

impl CoreError {
    pub fn invalid(name: impl Into<String>, reason: impl Into<String>) -> Self {
        CoreError::InvalidArgument { name: name.into(), reason: reason.into() }
    }

    pub fn wrong_type(name: impl Into<String>, reason: impl Into<String>) -> Self {
        CoreError::WrongType { name: name.into(), reason: reason.into() }
    }

    pub fn out_of_memory(name: impl Into<String>, reason: impl Into<String>) -> Self {
        CoreError::OutOfMemory { name: name.into(), reason: reason.into() }
    }
}

pub type Result<T> = std::result::Result<T, CoreError>;

/// `value` must be a finite number greater than zero.
pub fn require_positive(name: &str, value: f64) -> Result<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(CoreError::invalid(name, format!("must be a finite number > 0, got {value}")))
    }
}

/// `value` must be finite (any sign).
pub fn require_finite(name: &str, value: f64) -> Result<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(CoreError::invalid(name, format!("must be finite, got {value}")))
    }
}

/// `value` must be an integer of at least one.
pub fn require_count(name: &str, value: i64) -> Result<usize> {
    if value >= 1 {
        usize::try_from(value).map_err(|_| CoreError::invalid(name, format!("{value} is too large")))
    } else {
        Err(CoreError::invalid(name, format!("must be >= 1, got {value}")))
    }
}
