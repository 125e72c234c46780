//! A float buffer for large tables: aligned to 2 MiB and advised to use transparent huge
//! pages, so filling a fresh 256 MiB table is not dominated by 65 536 page faults (measured
//! here: ~2-3 GB/s into fresh 4 KiB pages against ~24 GB/s into mapped memory).
//!
//! Fresh memory is an [`UninitBuffer`]: it can only be written, as `MaybeUninit<f32>`, until
//! [`UninitBuffer::assume_init`] (the one unsafe step, whose caller vouches that every element
//! was written) turns it into an [`AlignedBuffer`], which is always initialised and can be read.
//! [`AlignedBuffer::zeroed`] is the safe way to get one without writing it yourself.

use std::alloc::{self, Layout};
use std::mem::MaybeUninit;
use std::ptr::NonNull;

use crate::error::Result;
use crate::size::{too_large, Size};

const HUGE_PAGE: usize = 2 << 20;
const CACHE_LINE: usize = 64;

/// The allocation itself: `len` floats at `ptr`, owned, with no claim about their contents.
struct Allocation {
    ptr: NonNull<f32>,
    len: usize,
    /// `None` for `len == 0` (nothing allocated, `ptr` dangling).
    layout: Option<Layout>,
}

// SAFETY: `Allocation` uniquely owns its memory, like a `Box<[f32]>`: moving it to another
// thread moves that ownership, and `&Allocation` gives no access to the memory at all (every
// access goes through the wrappers below, which take `&self` only to read and `&mut self` to
// write).
unsafe impl Send for Allocation {}
// SAFETY: see `Send`; f32 is `Sync`, so sharing reads between threads is fine.
unsafe impl Sync for Allocation {}

impl Allocation {
    /// Room for a row-major float table of shape `dims`, sized by [`Size::of`]: an
    /// `InvalidArgument` naming `name` when no memory could hold it, `OutOfMemory` when the
    /// allocator refuses it (never `handle_alloc_error`, which aborts the process).
    fn new(name: &str, dims: &[usize]) -> Result<Self> {
        let size = Size::of::<f32>(name, dims)?;
        if size.bytes == 0 {
            return Ok(Allocation { ptr: NonNull::dangling(), len: 0, layout: None });
        }
        let align = if size.bytes >= HUGE_PAGE { HUGE_PAGE } else { CACHE_LINE };
        // Fails only when rounding up to `align` passes isize::MAX.
        let layout = Layout::from_size_align(size.bytes, align)
            .map_err(|_| too_large(name, dims, std::mem::size_of::<f32>()))?;
        // SAFETY: `layout` has a non-zero size (`size.bytes > 0`).
        let raw = unsafe { alloc::alloc(layout) }.cast::<f32>();
        let ptr = NonNull::new(raw).ok_or_else(|| size.refused(name, dims))?;
        if align == HUGE_PAGE {
            advise_huge_pages(ptr.cast::<u8>(), size.bytes);
        }
        Ok(Allocation { ptr, len: size.len, layout: Some(layout) })
    }

    /// Bytes of the elements (the layout may round up to its alignment; this does not).
    fn nbytes(&self) -> usize {
        // `len * 4` was checked by `Size::of` when the allocation was made.
        self.len * std::mem::size_of::<f32>()
    }
}

impl Drop for Allocation {
    fn drop(&mut self) {
        if let Some(layout) = self.layout {
            // SAFETY: allocated in `Allocation::new` by the global allocator with exactly this
            // layout, and not freed before (this is the only owner).
            unsafe { alloc::dealloc(self.ptr.as_ptr().cast::<u8>(), layout) }
        }
    }
}

/// `len` freshly allocated floats whose contents are unknown: written through
/// [`as_uninit_mut`](Self::as_uninit_mut), then made readable with
/// [`assume_init`](Self::assume_init).
pub struct UninitBuffer {
    memory: Allocation,
}

impl UninitBuffer {
    /// Room for a row-major table of shape `dims`; errors name `name` (see [`Size::of`]).
    pub fn new(name: &str, dims: &[usize]) -> Result<Self> {
        Ok(UninitBuffer { memory: Allocation::new(name, dims)? })
    }

    pub fn len(&self) -> usize {
        self.memory.len
    }

    pub fn is_empty(&self) -> bool {
        self.memory.len == 0
    }

    /// The elements, to be written (e.g. with `MaybeUninit::write`); never readable as `f32`.
    pub fn as_uninit_mut(&mut self) -> &mut [MaybeUninit<f32>] {
        // SAFETY: `ptr` is valid for reads and writes of `len` elements (or dangling and
        // well-aligned with `len == 0`); `MaybeUninit<f32>` has the layout of `f32` and no
        // validity requirement, so uninitialised memory is a valid value of it; `&mut self`
        // makes this the only reference to the memory for the slice's lifetime.
        unsafe { std::slice::from_raw_parts_mut(self.memory.ptr.as_ptr().cast::<MaybeUninit<f32>>(), self.memory.len) }
    }

    /// The buffer, now readable.
    ///
    /// # Safety
    /// Every one of the `len` elements must have been written through
    /// [`as_uninit_mut`](Self::as_uninit_mut).
    pub unsafe fn assume_init(self) -> AlignedBuffer {
        AlignedBuffer { memory: self.memory }
    }
}

/// `len` initialised floats, 2 MiB-aligned when large (see the module documentation).
pub struct AlignedBuffer {
    /// Invariant: all `len` elements are initialised.
    memory: Allocation,
}

impl AlignedBuffer {
    /// A table of shape `dims` of zeros; errors as [`UninitBuffer::new`].
    pub fn zeroed(name: &str, dims: &[usize]) -> Result<Self> {
        let mut buffer = UninitBuffer::new(name, dims)?;
        buffer.as_uninit_mut().fill(MaybeUninit::new(0.0));
        // SAFETY: the line above wrote every element.
        Ok(unsafe { buffer.assume_init() })
    }

    pub fn len(&self) -> usize {
        self.memory.len
    }

    pub fn nbytes(&self) -> usize {
        self.memory.nbytes()
    }

    pub fn is_empty(&self) -> bool {
        self.memory.len == 0
    }

    /// The first element. The pointer is the allocation's own, not derived from a slice, so
    /// whoever owns the buffer exclusively may also write through it.
    pub fn as_ptr(&self) -> *const f32 {
        self.memory.ptr.as_ptr()
    }

    pub fn as_slice(&self) -> &[f32] {
        // SAFETY: `ptr` is valid for reads of `len` floats (or dangling and well-aligned with
        // `len == 0`), all initialised (the type's invariant); `&self` forbids writes meanwhile.
        unsafe { std::slice::from_raw_parts(self.memory.ptr.as_ptr(), self.memory.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as in `as_slice`, and `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.memory.ptr.as_ptr(), self.memory.len) }
    }
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(ptr: NonNull<u8>, bytes: usize) {
    // SAFETY: `ptr..ptr + bytes` is one allocation of ours, aligned to the 2 MiB huge page
    // (so to the base page, as madvise requires). MADV_HUGEPAGE only changes how the kernel
    // backs the range, never its contents; failure (e.g. no THP) changes nothing but speed,
    // so the result is ignored.
    unsafe {
        libc::madvise(ptr.as_ptr().cast::<libc::c_void>(), bytes, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_ptr: NonNull<u8>, _bytes: usize) {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CoreError;

    #[test]
    fn large_buffers_are_huge_page_aligned() {
        let mut b = AlignedBuffer::zeroed("b", &[1 << 20]).unwrap();
        assert_eq!(b.as_ptr() as usize % HUGE_PAGE, 0);
        assert_eq!(b.as_slice().iter().sum::<f32>(), 0.0);
        b.as_mut_slice().fill(1.0);
        assert_eq!(b.as_slice().iter().sum::<f32>(), (1 << 20) as f32);
        let small = AlignedBuffer::zeroed("small", &[3]).unwrap();
        assert_eq!(small.as_ptr() as usize % CACHE_LINE, 0);
        let empty = AlignedBuffer::zeroed("empty", &[4, 0]).unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.as_slice().len(), 0);
    }

    #[test]
    fn written_buffers_read_back() {
        let mut b = UninitBuffer::new("b", &[10, 100]).unwrap();
        assert_eq!(b.len(), 1000);
        for (i, x) in b.as_uninit_mut().iter_mut().enumerate() {
            x.write(i as f32);
        }
        // SAFETY: the loop wrote every element.
        let b = unsafe { b.assume_init() };
        assert!(b.as_slice().iter().enumerate().all(|(i, &x)| x == i as f32));
        let mut empty = UninitBuffer::new("empty", &[0]).unwrap();
        assert!(empty.is_empty() && empty.as_uninit_mut().is_empty());
    }

    #[test]
    fn sizes_no_memory_holds_are_invalid_and_refused_ones_out_of_memory() {
        // 2**40 x 2**40 floats wrapped to an empty buffer before sizes were checked.
        let err = UninitBuffer::new("query, key", &[1 << 40, 1 << 40]).err().unwrap();
        assert!(matches!(err, CoreError::InvalidArgument { .. }), "{err:?}");
        assert!(err.to_string().starts_with("query, key: 1099511627776 x 1099511627776 values"), "{err}");
        // 2**50 bytes: handle_alloc_error aborted the process here.
        let err = AlignedBuffer::zeroed("query, key", &[1 << 24, 1 << 24]).err().unwrap();
        assert!(matches!(err, CoreError::OutOfMemory { .. }), "{err:?}");
        // isize::MAX - 3 bytes fit Size::of but not a 2 MiB-aligned layout.
        let err = UninitBuffer::new("n", &[isize::MAX as usize / 4]).err().unwrap();
        assert!(matches!(err, CoreError::InvalidArgument { .. }), "{err:?}");
        assert_eq!(AlignedBuffer::zeroed("n", &[3, 2]).unwrap().nbytes(), 24);
    }
}
