//! salibi-core: the geometry of Scale-ALiBi, with no Python in it.
//!
//! - [`grid::PatchGrid`]: where each patch of a chip sits on the ground;
//! - [`table`]: ground-distance and bias tables between two grids, and masked sub-tables;
//! - [`cache`]: a bounded LRU so each geometry is built once per process;
//! - [`slopes::alibi_slopes`]: the per-head slopes of Press et al.;
//! - [`size`]: the one checked computation of a buffer's size, and fallible allocation.
//!
//! Every fallible function returns [`error::CoreError`], which names the argument at fault.
//! No size wraps and no allocation aborts: see [`size`].

pub mod align;
pub mod buffer;
pub mod cache;
pub mod error;
pub mod grid;
pub mod size;
pub mod slopes;
pub mod table;

pub use error::{CoreError, Result};
pub use grid::PatchGrid;
pub use slopes::alibi_slopes;
pub use table::{KeptIndices, Table};
