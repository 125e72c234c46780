//! A bounded, thread-safe LRU of tables keyed by geometry.
//!
//! Tables are immutable once built and shared as `Arc<Table>`, so a hit hands out the very
//! same memory (the Python binding exposes it to numpy read-only, without a copy).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::Result;
use crate::grid::{resolve_ref_length, PatchGrid};
use crate::table::{self, Table};

/// Which table, for which geometry. Floats are keyed by their bit patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TableKey {
    query: [u64; 6],
    key: [u64; 6],
    ref_length_bits: u64,
    /// 0 for a distance table, else the head count of a bias table.
    heads: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: usize,
    pub bytes: usize,
    pub max_bytes: usize,
}

struct Entry {
    table: Arc<Table>,
    last_used: u64,
}

struct State {
    entries: HashMap<TableKey, Entry>,
    clock: u64,
    bytes: usize,
    max_bytes: usize,
    hits: u64,
    misses: u64,
}

pub struct TableCache {
    state: Mutex<State>,
}

impl TableCache {
    pub fn new(max_bytes: usize) -> Self {
        TableCache {
            state: Mutex::new(State {
                entries: HashMap::new(),
                clock: 0,
                bytes: 0,
                max_bytes,
                hits: 0,
                misses: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the map inconsistent (every update is
        // a single insert/remove), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached table for `key`, or the one `build` makes (then cached if it fits).
    /// The lock is not held while building: two threads missing the same key at once both
    /// build it, which is rare and harmless.
    pub fn get_or_build(&self, key: TableKey, build: impl FnOnce() -> Result<Table>) -> Result<Arc<Table>> {
        {
            let mut state = self.lock();
            state.clock += 1;
            let now = state.clock;
            if let Some(entry) = state.entries.get_mut(&key) {
                entry.last_used = now;
                let table = Arc::clone(&entry.table);
                state.hits += 1;
                return Ok(table);
            }
            state.misses += 1;
        }
        let table = Arc::new(build()?);
        self.insert(key, Arc::clone(&table));
        Ok(table)
    }

    fn insert(&self, key: TableKey, table: Arc<Table>) {
        let mut state = self.lock();
        let size = table.nbytes();
        if size > state.max_bytes || state.entries.contains_key(&key) {
            return;
        }
        // Saturating: a limit near usize::MAX (say, from the environment) must not wrap the sum.
        while state.bytes.saturating_add(size) > state.max_bytes {
            let Some(oldest) = state.entries.iter().min_by_key(|(_, e)| e.last_used).map(|(k, _)| *k) else {
                break;
            };
            if let Some(evicted) = state.entries.remove(&oldest) {
                state.bytes -= evicted.table.nbytes();
            }
        }
        state.clock += 1;
        let now = state.clock;
        state.bytes += size;
        state.entries.insert(key, Entry { table, last_used: now });
    }

    pub fn stats(&self) -> CacheStats {
        let state = self.lock();
        CacheStats {
            hits: state.hits,
            misses: state.misses,
            entries: state.entries.len(),
            bytes: state.bytes,
            max_bytes: state.max_bytes,
        }
    }

    /// Drop every table and reset the counters; the byte limit may be changed at the same time.
    pub fn clear(&self, max_bytes: Option<usize>) {
        let mut state = self.lock();
        state.entries.clear();
        state.bytes = 0;
        state.hits = 0;
        state.misses = 0;
        if let Some(limit) = max_bytes {
            state.max_bytes = limit;
        }
    }
}

/// Default bound: 1 GiB, or `SALIBI_BIAS_CACHE_MB` megabytes.
fn default_max_bytes() -> usize {
    max_bytes_of(std::env::var("SALIBI_BIAS_CACHE_MB").ok().as_deref())
}

/// The bound for a `SALIBI_BIAS_CACHE_MB` value: megabytes beyond the address space mean no
/// bound at all (saturating: `mb << 20` lost the high bits, so 2**44 MB meant 0 bytes).
fn max_bytes_of(megabytes: Option<&str>) -> usize {
    megabytes
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map(|mb| mb.saturating_mul(1 << 20))
        .unwrap_or(1 << 30)
}

/// The process-wide cache used by the cached builders below.
pub fn global() -> &'static TableCache {
    static CACHE: OnceLock<TableCache> = OnceLock::new();
    CACHE.get_or_init(|| TableCache::new(default_max_bytes()))
}

fn table_key(query: &PatchGrid, key: &PatchGrid, ref_length: f64, heads: u64) -> TableKey {
    TableKey { query: query.key(), key: key.key(), ref_length_bits: ref_length.to_bits(), heads }
}

/// Cached `table::ground_distance_table`.
pub fn ground_distance_table(query: &PatchGrid, key: &PatchGrid, ref_length: Option<f64>) -> Result<Arc<Table>> {
    let length = resolve_ref_length(query, key, ref_length)?;
    global().get_or_build(table_key(query, key, length, 0), || table::ground_distance_table(query, key, Some(length)))
}

/// Cached `table::scale_alibi_bias`.
pub fn scale_alibi_bias(query: &PatchGrid, key: &PatchGrid, heads: i64, ref_length: Option<f64>) -> Result<Arc<Table>> {
    let length = resolve_ref_length(query, key, ref_length)?;
    let heads_key = crate::error::require_count("heads", heads)? as u64;
    global().get_or_build(table_key(query, key, length, heads_key), || {
        table::scale_alibi_bias(query, key, heads, Some(length))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(rows: i64) -> PatchGrid {
        PatchGrid::new(rows, rows, 16, 10.0, (0.0, 0.0)).unwrap()
    }

    fn key(rows: i64) -> TableKey {
        table_key(&grid(rows), &grid(rows), 160.0, 0)
    }

    fn build(rows: i64) -> Result<Table> {
        table::ground_distance_table(&grid(rows), &grid(rows), None)
    }

    #[test]
    fn a_repeat_is_a_hit_with_the_same_memory() {
        let cache = TableCache::new(1 << 20);
        let a = cache.get_or_build(key(4), || build(4)).unwrap();
        let b = cache.get_or_build(key(4), || panic!("must not rebuild")).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let s = cache.stats();
        assert_eq!((s.hits, s.misses, s.entries, s.bytes), (1, 1, 1, 16 * 16 * 4));
    }

    #[test]
    fn least_recently_used_is_evicted_first() {
        // 8x8 grid: 64*64*4 = 16 KiB per table; room for two.
        let cache = TableCache::new(2 * 16 * 1024);
        let (k1, k2) = (key(8), table_key(&grid(8), &grid(8), 1.0, 0));
        cache.get_or_build(k1, || build(8)).unwrap();
        cache.get_or_build(k2, || build(8)).unwrap();
        cache.get_or_build(k1, || build(8)).unwrap(); // k1 now most recent
        let k3 = table_key(&grid(8), &grid(8), 2.0, 0);
        cache.get_or_build(k3, || build(8)).unwrap(); // evicts k2
        assert_eq!(cache.stats().entries, 2);
        let mut rebuilt = false;
        cache
            .get_or_build(k2, || {
                rebuilt = true;
                build(8)
            })
            .unwrap();
        assert!(rebuilt);
        assert!(cache.stats().bytes <= 2 * 16 * 1024);
    }

    #[test]
    fn a_table_larger_than_the_bound_is_returned_but_not_kept() {
        let cache = TableCache::new(100);
        let t = cache.get_or_build(key(4), || build(4)).unwrap();
        assert_eq!(t.shape(), &[16, 16]);
        assert_eq!(cache.stats().entries, 0);
    }

    #[test]
    fn a_bound_beyond_the_address_space_saturates() {
        assert_eq!(max_bytes_of(None), 1 << 30);
        assert_eq!(max_bytes_of(Some(" 64 ")), 64 << 20);
        assert_eq!(max_bytes_of(Some("17592186044416")), usize::MAX); // 2**44 MB
        let cache = TableCache::new(usize::MAX);
        cache.get_or_build(key(2), || build(2)).unwrap();
        cache.get_or_build(key(3), || build(3)).unwrap();
        assert_eq!(cache.stats().entries, 2);
    }

    #[test]
    fn errors_are_not_cached() {
        let cache = TableCache::new(1 << 20);
        let err = cache.get_or_build(key(4), || Err(crate::error::CoreError::invalid("x", "no")));
        assert!(err.is_err());
        assert_eq!(cache.stats().entries, 0);
    }
}
