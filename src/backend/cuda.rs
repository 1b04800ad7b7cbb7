//! The CUDA device: cudarc over the CUDA driver, with the kernels of kernels/ compiled by NVRTC.
//! Both libraries are loaded at run time, so the same binary starts on machines without CUDA. The
//! model and the batching over chunks are in `gpu.rs`; this file only moves bytes and launches.

use super::device::{Arg, Device, Launch};
use super::gpu::GpuBackend;
use super::kernels::{self, PtxSource};
use crate::error::{Error, Result};
use crate::model::Model;
use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// The program's GPU backend.
pub type CudaBackend = GpuBackend<CudaDevice>;

/// How to open the GPU: every choice explicit (the CLI maps its flags onto these).
#[derive(Clone, Debug)]
pub struct CudaOptions {
    /// which GPU
    pub ordinal: usize,
    /// the most GPU memory to use, bytes
    pub mem_limit: u64,
    /// replay each batch as a recorded CUDA graph (`--cuda-graphs`; not yet measured on a GPU)
    pub graphs: bool,
    /// compile the kernels with NVRTC even when PTX is built in (`--kernels nvrtc`)
    pub force_nvrtc: bool,
    /// where NVRTC's PTX is kept between runs (`--ptx-cache`); `None`: not kept
    pub ptx_cache: Option<PathBuf>,
}

impl Default for CudaOptions {
    fn default() -> Self {
        CudaOptions {
            ordinal: 0,
            mem_limit: 8 << 30,
            graphs: false,
            force_nvrtc: false,
            ptx_cache: kernels::default_cache_dir(),
        }
    }
}

fn gpu_err(e: impl std::fmt::Display) -> Error {
    Error::Usage(format!("CUDA: {e}"))
}

/// Whether a CUDA driver library is installed at all (without it there is nothing to try).
pub fn driver_present() -> bool {
    // Every Linux driver install provides the soname libcuda.so.1, so where the dynamic loader
    // cannot find it, none of the other names cudarc tries can be there either; asking for it
    // first spares every run on a machine without a GPU cudarc's search of each library path for
    // each name (about 170 failed opens, 1 to 1.5 ms a run on the dev machine).
    #[cfg(target_os = "linux")]
    {
        // SAFETY: only tries to dlopen libcuda
        match unsafe { libloading::Library::new("libcuda.so.1") } {
            // kept open: cudarc opens it again at once, and a driver is better never closed
            Ok(lib) => std::mem::forget(lib),
            Err(_) => return false,
        }
    }
    // SAFETY: only tries to dlopen libcuda
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// One GPU with the kernels loaded: memory, copies and launches for the GPU backend.
pub struct CudaDevice {
    stream: Arc<CudaStream>,
    funcs: HashMap<&'static str, CudaFunction>,
    name: String,
}

impl CudaDevice {
    /// Open GPU `opts.ordinal` and compile every kernel for it.
    pub fn open(opts: &CudaOptions) -> Result<CudaDevice> {
        let ordinal = opts.ordinal;
        if !driver_present() {
            return Err(Error::Usage("no CUDA driver (libcuda) found".into()));
        }
        let ctx = CudaContext::new(ordinal).map_err(gpu_err)?;
        let device = ctx.name().map_err(gpu_err)?;
        let (major, minor) = ctx.compute_capability().map_err(gpu_err)?;
        let source = PtxSource::choose(major as u32, minor as u32, opts.force_nvrtc)
            .map_err(|e| Error::Usage(format!("{device}: {e}")))?;
        if matches!(source, PtxSource::Nvrtc(_)) && !kernels::nvrtc_present() {
            return Err(Error::Usage(
                "the CUDA runtime compiler (libnvrtc) was not found, and this nnz was built without nvcc".into(),
            ));
        }
        // one stream does all the work in order; cudarc's cross-stream event tracking is not needed
        // SAFETY: no other stream of this context touches our buffers
        unsafe { ctx.disable_event_tracking() };
        // a stream of our own: graphs cannot be captured on the legacy default stream
        let stream = ctx.new_stream().map_err(gpu_err)?;
        let mut funcs = HashMap::new();
        for (name, src, fns) in kernels::KERNELS {
            let ptx = source.ptx(name, src, opts.ptx_cache.as_deref())?;
            let module = ctx.load_module(ptx).map_err(gpu_err)?;
            for f in *fns {
                funcs.insert(*f, module.load_function(f).map_err(gpu_err)?);
            }
        }
        let from = match source {
            PtxSource::Embedded => format!("built-in PTX for {}", kernels::EMBEDDED_ARCH),
            PtxSource::Nvrtc(arch) => format!("NVRTC for {arch}"),
        };
        Ok(CudaDevice {
            stream,
            funcs,
            name: format!("{device} (GPU {ordinal}, compute {major}.{minor}, kernels: {from})"),
        })
    }
}

impl CudaBackend {
    /// The model on the GPU that `opts` names.
    pub fn open(model: Model, opts: &CudaOptions) -> Result<CudaBackend> {
        GpuBackend::new(CudaDevice::open(opts)?, model, opts.mem_limit, opts.graphs)
    }
}

/// A captured CUDA graph. cudarc's graph is not `Send`; ours is used by one thread at a time (the
/// worker that recorded it) and only with its own stream.
pub struct Graph(cudarc::driver::CudaGraph);
// SAFETY: see above; the CUDA driver API is thread-safe, and the graph's context is bound to the
// calling thread before every use (cudarc does that)
unsafe impl Send for Graph {}

impl Device for CudaDevice {
    type Mem = CudaSlice<u8>;
    type Graph = Graph;

    fn name(&self) -> String {
        self.name.clone()
    }

    fn alloc(&self, bytes: usize) -> Result<CudaSlice<u8>> {
        self.stream.alloc_zeros::<u8>(bytes.max(1)).map_err(gpu_err)
    }

    fn upload(&self, dst: &mut CudaSlice<u8>, src: &[u8]) -> Result<()> {
        let mut view = dst.slice_mut(..src.len());
        self.stream.memcpy_htod(src, &mut view).map_err(gpu_err)
    }

    fn download(&self, src: &CudaSlice<u8>, dst: &mut [u8]) -> Result<()> {
        let view = src.slice(..dst.len());
        self.stream.memcpy_dtoh(&view, dst).map_err(gpu_err)?;
        self.stream.synchronize().map_err(gpu_err)
    }

    unsafe fn launch(&self, name: &'static str, shape: Launch, args: &[Arg<'_, CudaSlice<u8>>]) -> Result<()> {
        let f = self
            .funcs
            .get(name)
            .ok_or_else(|| Error::Usage(format!("no kernel named {name}")))?;
        let mut b = self.stream.launch_builder(f);
        for a in args {
            match a {
                Arg::Mem(m) => b.arg(*m),
                Arg::I32(v) => b.arg(v),
            };
        }
        let cfg = LaunchConfig {
            grid_dim: shape.grid,
            block_dim: shape.block,
            shared_mem_bytes: shape.shared,
        };
        b.launch(cfg).map_err(gpu_err)?;
        Ok(())
    }

    fn capture_begin(&self) -> Result<()> {
        use cudarc::driver::sys::CUstreamCaptureMode;
        self.stream
            .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
            .map_err(gpu_err)
    }

    fn capture_end(&self) -> Result<Graph> {
        let flags = cudarc::driver::sys::CUgraphInstantiate_flags(0);
        match self.stream.end_capture(flags).map_err(gpu_err)? {
            Some(g) => Ok(Graph(g)),
            None => Err(Error::Usage("CUDA: capturing a graph recorded nothing".into())),
        }
    }

    fn replay(&self, graph: &Graph) -> Result<()> {
        graph.0.launch().map_err(gpu_err)
    }
}
