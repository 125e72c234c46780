//! ALiBi head slopes (Press et al., "Train Short, Test Long").

use crate::error::{require_count, Result};
use crate::size::vec_with_capacity;

/// Slope `h` of a power-of-two head count `n`: `m_h = 2^(-8 (h+1) / n)`.
fn power_of_two_slope(n: usize, h: usize) -> f64 {
    2f64.powf(-8.0 * (h as f64 + 1.0) / n as f64)
}

/// The slopes of the original paper for any head count: for a power of two the geometric
/// sequence above; otherwise the slopes of the largest power of two below `H`, followed by
/// every other slope of the sequence for twice that power, until there are `H`. The one
/// allocation is sized by [`crate::size`]: a head count no memory could hold is an
/// `InvalidArgument`, one the allocator refuses `OutOfMemory`, both naming `heads`.
pub fn alibi_slopes(heads: i64) -> Result<Vec<f32>> {
    let heads = require_count("heads", heads)?;
    let mut slopes = vec_with_capacity("heads", &[heads])?;
    slopes.extend(slopes_f64(heads).map(|m| m as f32));
    Ok(slopes)
}

fn slopes_f64(heads: usize) -> impl Iterator<Item = f64> {
    // `heads` came from an i64, so `2 * closest` and `2 * i` (i < closest) fit a usize.
    let closest = 1usize << (usize::BITS - 1 - heads.leading_zeros());
    let first = (0..closest).map(move |h| power_of_two_slope(closest, h));
    let rest = (0..heads - closest).map(move |i| power_of_two_slope(2 * closest, 2 * i));
    first.chain(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_heads_halve_each_time() {
        let s = alibi_slopes(8).unwrap();
        let expected: Vec<f32> = (1..=8).map(|i| 0.5f32.powi(i)).collect();
        assert_eq!(s, expected);
    }

    #[test]
    fn non_power_of_two_follows_the_paper() {
        // 6 heads: the 4-head slopes (1/4, 1/16, 1/64, 1/256) then the odd-position
        // 8-head slopes (1/2, 1/8).
        let s = alibi_slopes(6).unwrap();
        let expected = [0.25f32, 0.0625, 0.015625, 0.00390625, 0.5, 0.125];
        assert_eq!(s, expected);
        assert_eq!(alibi_slopes(12).unwrap().len(), 12);
        assert_eq!(alibi_slopes(1).unwrap(), vec![2f32.powi(-8)]);
    }

    #[test]
    fn zero_heads_is_an_error() {
        assert!(alibi_slopes(0).unwrap_err().to_string().starts_with("heads:"));
    }

    #[test]
    fn absurd_head_counts_are_errors_not_aborts() {
        use crate::error::CoreError;
        // 2**62 floats overflow the byte count (a capacity-overflow panic before).
        assert!(matches!(alibi_slopes(1 << 62), Err(CoreError::InvalidArgument { .. })));
        // 2**48 floats are 2**50 bytes, which no allocator grants (an abort before).
        let err = alibi_slopes(1 << 48).unwrap_err();
        assert!(matches!(err, CoreError::OutOfMemory { .. }), "{err:?}");
        assert!(err.to_string().starts_with("heads:"), "{err}");
    }
}
