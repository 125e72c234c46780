//! salibi-core: the geometry of Scale-ALiBi, with no Python in it.
//!
//! - [`grid::PatchGrid`]: where each patch of a chip sits on the ground;
//! - [`table`]: ground-distance and bias tables between two grids, and masked sub-tables;
//! - [`cache`]: a bounded LRU so each geometry is built once per process;
//! - [`slopes::alibi_slopes`]: the per-head slopes of Press et al.
//!
//! Every fallible function returns [`error::CoreError`], which names the argument at fault.

pub mod align;
pub mod buffer;
pub mod cache;
pub mod error;
pub mod grid;
pub mod slopes;
pub mod table;

pub use error::{CoreError, Result};
pub use grid::PatchGrid;
pub use slopes::alibi_slopes;
pub use table::{KeptIndices, Table};
