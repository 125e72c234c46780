//! The one place where a buffer's size is computed, and the fallible ways to allocate one.
//!
//! Every table, chip stack, mask and list whose length follows from a caller's numbers (grid
//! shapes, head counts, chip sizes, index arrays) is sized by [`Size::of`]: the product of its
//! dimensions and its byte count, both with `checked_mul`, so no size ever wraps round to a
//! small one. The rule is numpy's (and ndarray's): the non-zero dimensions times the element
//! size must not exceed `isize::MAX` bytes, the largest allocation Rust allows; a zero
//! dimension makes the buffer empty.
//!
//! - A size beyond that is [`CoreError::InvalidArgument`] (Python: `ValueError`): no memory
//!   could hold it, whatever the machine.
//! - A size within it that the allocator refuses is [`CoreError::OutOfMemory`] (Python:
//!   `MemoryError`): [`vec_with_capacity`] and [`vec_filled`] use `try_reserve_exact`, and
//!   [`crate::buffer`] checks `alloc`'s result, so the global allocator never aborts the process.

use crate::error::{CoreError, Result};

/// The checked size of a buffer of `T`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    /// Elements: the product of the dimensions.
    pub len: usize,
    /// Bytes: `len` times the size of one element; at most `isize::MAX`.
    pub bytes: usize,
}

impl Size {
    /// The size of a row-major buffer of `T` of shape `dims`, or the `InvalidArgument` naming
    /// `name` (the argument(s) the shape comes from) when no memory could hold it.
    pub fn of<T>(name: &str, dims: &[usize]) -> Result<Size> {
        let element = std::mem::size_of::<T>();
        let nonzero = dims.iter().filter(|&&d| d != 0).try_fold(1usize, |n, &d| n.checked_mul(d));
        let addressable = nonzero.and_then(|n| n.checked_mul(element)).filter(|&b| b <= isize::MAX as usize);
        match (nonzero, addressable) {
            (Some(n), Some(b)) if !dims.contains(&0) => Ok(Size { len: n, bytes: b }),
            (Some(_), Some(_)) => Ok(Size { len: 0, bytes: 0 }),
            _ => Err(too_large(name, dims, element)),
        }
    }

    /// The `OutOfMemory` error for a buffer of this size that could not be allocated.
    pub(crate) fn refused(&self, name: &str, dims: &[usize]) -> CoreError {
        CoreError::out_of_memory(
            name,
            format!(
                "{} values need {} ({} bytes), which could not be allocated; use smaller sizes",
                shape_text(dims),
                human_bytes(self.bytes),
                self.bytes
            ),
        )
    }
}

/// The `InvalidArgument` error for a shape of `element`-byte values that no memory could hold.
pub(crate) fn too_large(name: &str, dims: &[usize], element: usize) -> CoreError {
    CoreError::invalid(
        name,
        format!(
            "{} values of {element} bytes are more than any memory can hold (at most {} bytes); use smaller sizes",
            shape_text(dims),
            isize::MAX
        ),
    )
}

/// An empty `Vec` with room for exactly the `dims` product of elements, allocated now.
pub fn vec_with_capacity<T>(name: &str, dims: &[usize]) -> Result<Vec<T>> {
    let size = Size::of::<T>(name, dims)?;
    let mut values = Vec::new();
    values.try_reserve_exact(size.len).map_err(|_| size.refused(name, dims))?;
    Ok(values)
}

/// A `Vec` of the `dims` product of copies of `value`.
pub fn vec_filled<T: Clone>(name: &str, dims: &[usize], value: T) -> Result<Vec<T>> {
    let mut values = vec_with_capacity(name, dims)?;
    values.resize(Size::of::<T>(name, dims)?.len, value);
    Ok(values)
}

fn shape_text(dims: &[usize]) -> String {
    dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(" x ")
}

fn human_bytes(bytes: usize) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = "bytes";
    for name in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = name;
    }
    format!("{value:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_invalid(result: Result<Size>) -> bool {
        matches!(result, Err(CoreError::InvalidArgument { .. }))
    }

    #[test]
    fn size_is_the_product_of_the_dimensions_and_the_element() {
        assert_eq!(Size::of::<f32>("t", &[16, 1024, 4096]).unwrap(), Size { len: 1 << 26, bytes: 1 << 28 });
        assert_eq!(Size::of::<f64>("t", &[]).unwrap(), Size { len: 1, bytes: 8 });
        assert_eq!(Size::of::<[f64; 4]>("t", &[3, 5]).unwrap(), Size { len: 15, bytes: 480 });
    }

    #[test]
    fn a_product_of_dimensions_that_overflows_is_invalid_not_wrapped() {
        // 2**40 * 2**40 wraps to 0 in unchecked release arithmetic.
        assert!(is_invalid(Size::of::<f32>("rows", &[1 << 40, 1 << 40])));
        assert!(is_invalid(Size::of::<u8>("rows", &[usize::MAX, 2])));
        let err = Size::of::<f32>("heads, query, key", &[1 << 62, 4, 4]).unwrap_err().to_string();
        assert!(err.starts_with("heads, query, key: 4611686018427387904 x 4 x 4 values of 4 bytes"), "{err}");
        assert!(err.contains("use smaller sizes"), "{err}");
    }

    #[test]
    fn a_byte_count_that_overflows_or_passes_isize_max_is_invalid() {
        // 2**62 floats are 2**64 bytes: the element size is what overflows.
        assert!(is_invalid(Size::of::<f32>("n", &[1 << 62])));
        // 2**61 floats are exactly 2**63 bytes, one more than isize::MAX.
        assert!(is_invalid(Size::of::<f32>("n", &[1 << 61])));
        let largest = isize::MAX as usize / 4;
        assert_eq!(Size::of::<f32>("n", &[largest]).unwrap().bytes, largest * 4);
        assert_eq!(Size::of::<u8>("n", &[isize::MAX as usize]).unwrap().len, isize::MAX as usize);
    }

    #[test]
    fn a_zero_dimension_is_empty_but_the_others_must_still_fit() {
        assert_eq!(Size::of::<f32>("n", &[0, 1 << 20]).unwrap(), Size { len: 0, bytes: 0 });
        // numpy's rule: (0, 2**40, 2**40) is refused, as no strides could address it.
        assert!(is_invalid(Size::of::<f32>("n", &[0, 1 << 40, 1 << 40])));
    }

    #[test]
    fn an_allocation_the_machine_refuses_is_out_of_memory_not_an_abort() {
        // 2**50 bytes: within isize::MAX, beyond every 47- or 48-bit user address space.
        let err = vec_with_capacity::<f32>("query, key", &[1 << 24, 1 << 24]).unwrap_err();
        assert!(matches!(err, CoreError::OutOfMemory { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.starts_with("query, key: 16777216 x 16777216 values need 1.0 PiB"), "{text}");
        assert!(matches!(vec_filled("n", &[1 << 48], 0f64), Err(CoreError::OutOfMemory { .. })));
        // The process goes on and can still allocate.
        assert_eq!(vec_filled("n", &[2, 3], 7u8).unwrap(), vec![7u8; 6]);
        assert!(vec_with_capacity::<f32>("n", &[0, 5]).unwrap().is_empty());
    }

    #[test]
    fn byte_counts_read_in_binary_units() {
        assert_eq!(human_bytes(512), "512.0 bytes");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
        assert_eq!(human_bytes(1 << 50), "1.0 PiB");
    }
}
