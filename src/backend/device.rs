//! What the GPU backend needs of a device: memory, copies and kernel launches by name. The CUDA
//! driver (through cudarc) is the device the program uses; the tests add a CPU emulation of the
//! same kernels (`src/test_support/emu.rs`), so the whole GPU path — kernels and the code that launches them — is
//! checked against the CPU reference on machines without a GPU.

use crate::error::Result;

/// A kernel argument: a device buffer (passed as its address) or a scalar (passed by value).
pub enum Arg<'a, M> {
    Mem(&'a M),
    I32(i32),
}

/// Grid and block shape of one launch, and its dynamic shared memory in bytes.
#[derive(Clone, Copy, Debug)]
pub struct Launch {
    pub grid: (u32, u32, u32),
    pub block: (u32, u32, u32),
    pub shared: u32,
}

impl Launch {
    /// One thread per element, 256 per block.
    pub fn elementwise(n: usize) -> Launch {
        Launch {
            grid: (n.div_ceil(256).max(1) as u32, 1, 1),
            block: (256, 1, 1),
            shared: 0,
        }
    }

    /// One block of `threads` per row.
    pub fn per_row(rows: usize, threads: u32) -> Launch {
        Launch {
            grid: (rows as u32, 1, 1),
            block: (threads, 1, 1),
            shared: 0,
        }
    }
}

/// Plain integer types that cross to the device as bytes.
pub trait Plain: Copy + Default + Send + Sync + 'static {}
impl Plain for i8 {}
impl Plain for i32 {}
impl Plain for u32 {}

pub fn as_bytes<T: Plain>(s: &[T]) -> &[u8] {
    // SAFETY: i8/i32/u32 have no padding and every byte pattern is valid for u8
    unsafe { std::slice::from_raw_parts(s.as_ptr() as *const u8, std::mem::size_of_val(s)) }
}

pub fn as_bytes_mut<T: Plain>(s: &mut [T]) -> &mut [u8] {
    // SAFETY: as above, and every byte pattern is a valid i8/i32/u32
    unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr() as *mut u8, std::mem::size_of_val(s)) }
}

/// Buffers are untyped bytes; kernels see them as the pointer types of their signatures. All work
/// goes in order on one queue; `download` waits for everything launched before it.
pub trait Device: Send + Sync + 'static {
    type Mem: Send + Sync;
    /// A recorded sequence of launches (a CUDA graph).
    type Graph: Send;
    /// Which device, for `-v`.
    fn name(&self) -> String;
    /// `bytes` of zeroed device memory.
    fn alloc(&self, bytes: usize) -> Result<Self::Mem>;
    /// Copy `src` to the start of `dst`.
    fn upload(&self, dst: &mut Self::Mem, src: &[u8]) -> Result<()>;
    /// Copy the first `dst.len()` bytes of `src` to the host, after all earlier work.
    fn download(&self, src: &Self::Mem, dst: &mut [u8]) -> Result<()>;
    /// Launch kernel `name` (one of `kernels::KERNELS`).
    ///
    /// # Safety
    /// `args` must match the kernel's parameter list in kernels/*.cu, and every buffer must hold
    /// every element the launch shape makes the kernel touch.
    unsafe fn launch(&self, name: &'static str, shape: Launch, args: &[Arg<'_, Self::Mem>]) -> Result<()>;
    /// From now on, record launches instead of running them (only launches; no copies).
    fn capture_begin(&self) -> Result<()>;
    /// Stop recording; the launches recorded since `capture_begin`, which did not run.
    fn capture_end(&self) -> Result<Self::Graph>;
    /// Run a recorded sequence, in order with the other work: the same kernels, shapes, buffers
    /// and scalars as when it was recorded.
    fn replay(&self, graph: &Self::Graph) -> Result<()>;
}

/// Upload a typed slice into fresh device memory.
pub fn upload_new<D: Device, T: Plain>(dev: &D, src: &[T]) -> Result<D::Mem> {
    let mut m = dev.alloc(std::mem::size_of_val(src).max(1))?;
    dev.upload(&mut m, as_bytes(src))?;
    Ok(m)
}
