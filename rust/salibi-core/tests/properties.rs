//! Property tests of the bias tables on random geometries.

use proptest::prelude::*;
use salibi_core::{table, PatchGrid};

fn grid_strategy() -> impl Strategy<Value = PatchGrid> {
    (1i64..7, 1i64..7, 1i64..20, 0.1f64..40.0, -1e6f64..1e6, -1e6f64..1e6)
        .prop_map(|(r, c, p, g, x, y)| PatchGrid::new(r, c, p, g, (x, y)).unwrap())
}

/// Reference: the formula of DESIGN.md in f64.
fn expected(q: &PatchGrid, k: &PatchGrid, a: usize, b: usize, length: f64) -> f64 {
    let (qa, kb) = (q.centre(a), k.centre(b));
    ((qa.0 - kb.0).powi(2) + (qa.1 - kb.1).powi(2)).sqrt() / length
}

proptest! {
    #[test]
    fn distance_table_matches_the_formula(q in grid_strategy(), k in grid_strategy()) {
        let t = table::ground_distance_table(&q, &k, None).unwrap();
        let length = q.footprint().max(k.footprint());
        prop_assert_eq!(t.shape(), &[q.num_patches(), k.num_patches()]);
        for a in 0..q.num_patches() {
            for b in 0..k.num_patches() {
                let e = expected(&q, &k, a, b, length);
                let got = t.at(&[a, b]) as f64;
                prop_assert!((got - e).abs() <= 1e-4 * e.max(1.0), "{} vs {}", got, e);
            }
        }
    }

    #[test]
    fn swapping_query_and_key_transposes(q in grid_strategy(), k in grid_strategy()) {
        let qk = table::ground_distance_table(&q, &k, None).unwrap();
        let kq = table::ground_distance_table(&k, &q, None).unwrap();
        for a in 0..q.num_patches() {
            for b in 0..k.num_patches() {
                let (x, y) = (qk.at(&[a, b]), kq.at(&[b, a]));
                prop_assert!((x - y).abs() <= 1e-4 * x.max(1.0));
            }
        }
    }

    #[test]
    fn bias_is_never_positive_and_zero_only_at_coincident_centres(g in grid_strategy(), heads in 1i64..17) {
        let b = table::scale_alibi_bias(&g, &g, heads, None).unwrap();
        let n = g.num_patches();
        for h in 0..heads as usize {
            for a in 0..n {
                prop_assert_eq!(b.at(&[h, a, a]), 0.0);
                for c in 0..n {
                    prop_assert!(b.at(&[h, a, c]) <= 0.0);
                    if a != c { prop_assert!(b.at(&[h, a, c]) < 0.0); }
                }
            }
        }
    }
}
