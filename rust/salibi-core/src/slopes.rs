//! ALiBi head slopes (Press et al., "Train Short, Test Long").

use crate::error::{require_count, Result};

/// Slopes for a power-of-two head count: `m_h = 2^(-8 (h+1) / H)`.
fn power_of_two_slopes(heads: usize) -> Vec<f64> {
    (0..heads).map(|h| 2f64.powf(-8.0 * (h as f64 + 1.0) / heads as f64)).collect()
}

/// The slopes of the original paper for any head count: for a power of two the geometric
/// sequence above; otherwise the slopes of the largest power of two below `H`, followed by
/// every other slope of the sequence for twice that power, until there are `H`.
pub fn alibi_slopes(heads: i64) -> Result<Vec<f32>> {
    let heads = require_count("heads", heads)?;
    Ok(slopes_f64(heads).into_iter().map(|m| m as f32).collect())
}

fn slopes_f64(heads: usize) -> Vec<f64> {
    if heads.is_power_of_two() {
        return power_of_two_slopes(heads);
    }
    let closest = 1usize << (usize::BITS - 1 - heads.leading_zeros());
    let mut slopes = power_of_two_slopes(closest);
    slopes.extend(slopes_f64(2 * closest).into_iter().step_by(2).take(heads - closest));
    slopes
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
}
