//! Tests only: a `Device` that runs the CUDA kernels on the CPU. The kernel files are compiled as
//! C++ with the host compiler after `cuda_emu.h` (which stands in for the CUDA built-ins) into a
//! shared library, loaded with libloading. With it, `GpuBackend` — kernels, launch shapes, the
//! batching of many chunks — runs end to end on machines without a GPU, and must match the CPU
//! backend bit for bit. What it cannot check: timing, and memory-model effects of real parallel
//! threads (the emulated threads of a block take turns).

use crate::backend::device::{Arg, Device, Launch};
use crate::backend::kernels::KERNELS;
use crate::error::{Error, Result};
use std::ffi::{c_char, c_int, c_uint, c_void, CString};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};

type LaunchFn = unsafe extern "C" fn(*const c_char, *const c_uint, *const c_uint, c_uint, *mut *mut c_void) -> c_int;

pub struct EmuDevice {
    lib: &'static libloading::Library,
    /// launches recorded since `capture_begin`, when recording
    capture: Mutex<Option<Vec<Recorded>>>,
}

/// One recorded launch: what `launch` was given, buffers as their addresses.
pub struct Recorded {
    name: &'static str,
    shape: Launch,
    args: Vec<RecordedArg>,
}

#[derive(Clone, Copy)]
enum RecordedArg {
    Mem(*mut u64),
    I32(i32),
}

// SAFETY: the addresses are only passed back to the emulation, under its lock
unsafe impl Send for Recorded {}

/// The emulation has global state: one launch at a time in the whole process.
static LAUNCH: Mutex<()> = Mutex::new(());

/// Device memory: a heap block (8-byte aligned) that the emulated kernels write through.
pub struct EmuMem {
    ptr: *mut u64,
    words: usize,
}

// SAFETY: the block is owned by this value; kernels only run while the device lock is held
unsafe impl Send for EmuMem {}
unsafe impl Sync for EmuMem {}

impl Drop for EmuMem {
    fn drop(&mut self) {
        // SAFETY: ptr/words come from the Vec leaked in `alloc`
        unsafe { drop(Vec::from_raw_parts(self.ptr, self.words, self.words)) };
    }
}

impl EmuMem {
    fn bytes(&self) -> usize {
        self.words * 8
    }
}

/// Compile the emulation once per process. `Err` says why it cannot be built here.
fn library() -> std::result::Result<&'static libloading::Library, String> {
    static LIB: OnceLock<std::result::Result<libloading::Library, String>> = OnceLock::new();
    LIB.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = std::env::temp_dir().join(format!("nnz-emu-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut tu = format!("#include \"{}\"\n", root.join("src/test_support/cuda_emu.h").display());
        for (file, _, _) in KERNELS {
            tu += &format!("#include \"{}\"\n", root.join("kernels").join(file).display());
        }
        tu += "static void emu_register(std::map<std::string, EmuKernel>& t) {\n";
        for (_, src, names) in KERNELS {
            for n in *names {
                let barriers = uses_barriers(src, n)?;
                tu += &format!("    t[\"{n}\"] = {{emu_wrap({n}), {barriers}}};\n");
            }
        }
        tu += "}\n";
        let src = dir.join("emu.cpp");
        let so = dir.join("libnnzemu.so");
        std::fs::write(&src, tu).map_err(|e| e.to_string())?;
        let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
        let out = Command::new(&cxx)
            .args(["-std=c++17", "-O2", "-shared", "-fPIC", "-Wno-unknown-pragmas", "-o"])
            .arg(&so)
            .arg(&src)
            .output()
            .map_err(|e| format!("cannot run the C++ compiler {cxx}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "compiling the kernel emulation failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        // SAFETY: our own library; loading runs no initialisers with side effects
        let lib = unsafe { libloading::Library::new(&so) }.map_err(|e| e.to_string())?;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(lib)
    })
    .as_ref()
    .map_err(|e| e.clone())
}

/// Whether kernel `name`'s body in `src` waits at a barrier: calls `__syncthreads()` or one of
/// common.cuh's `block_*` reductions (which do).
fn uses_barriers(src: &str, name: &str) -> std::result::Result<bool, String> {
    let start = src
        .find(&format!("void {name}("))
        .ok_or_else(|| format!("kernel {name} not found in its file"))?;
    let open = start + src[start..].find('{').ok_or("kernel without a body")?;
    let mut depth = 0;
    for (i, c) in src[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    let body = &src[open..open + i];
                    return Ok(body.contains("__syncthreads") || body.contains("block_"));
                }
            }
            _ => {}
        }
    }
    Err(format!("unbalanced braces in kernel {name}"))
}

impl EmuDevice {
    /// `Ok(None)` when there is no C++ compiler (the caller skips, unless NNZ_REQUIRE_EMU is set).
    pub fn open() -> Result<Option<EmuDevice>> {
        match library() {
            Ok(lib) => Ok(Some(EmuDevice {
                lib,
                capture: Mutex::new(None),
            })),
            Err(e) if e.starts_with("cannot run") && std::env::var_os("NNZ_REQUIRE_EMU").is_none() => {
                eprintln!("skipping the kernel emulation: {e}");
                Ok(None)
            }
            Err(e) => Err(Error::Usage(e)),
        }
    }
}

impl Device for EmuDevice {
    type Mem = EmuMem;
    type Graph = Vec<Recorded>;

    fn name(&self) -> String {
        "CPU emulation of the CUDA kernels".into()
    }

    fn alloc(&self, bytes: usize) -> Result<EmuMem> {
        let words = bytes.div_ceil(8).max(1);
        let mut v = vec![0u64; words];
        let ptr = v.as_mut_ptr();
        std::mem::forget(v);
        Ok(EmuMem { ptr, words })
    }

    fn upload(&self, dst: &mut EmuMem, src: &[u8]) -> Result<()> {
        assert!(src.len() <= dst.bytes());
        // SAFETY: dst holds at least src.len() bytes
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.ptr as *mut u8, src.len()) };
        Ok(())
    }

    fn download(&self, src: &EmuMem, dst: &mut [u8]) -> Result<()> {
        assert!(dst.len() <= src.bytes());
        // SAFETY: src holds at least dst.len() bytes; no kernel runs (launches are synchronous)
        unsafe { std::ptr::copy_nonoverlapping(src.ptr as *const u8, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    unsafe fn launch(&self, name: &'static str, shape: Launch, args: &[Arg<'_, EmuMem>]) -> Result<()> {
        let args: Vec<RecordedArg> = args
            .iter()
            .map(|a| match a {
                Arg::Mem(m) => RecordedArg::Mem(m.ptr),
                Arg::I32(v) => RecordedArg::I32(*v),
            })
            .collect();
        let rec = Recorded { name, shape, args };
        if let Some(list) = self.capture.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            list.push(rec);
            return Ok(());
        }
        self.run(&rec)
    }

    fn capture_begin(&self) -> Result<()> {
        *self.capture.lock().unwrap_or_else(|e| e.into_inner()) = Some(Vec::new());
        Ok(())
    }

    fn capture_end(&self) -> Result<Vec<Recorded>> {
        self.capture
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| Error::Usage("emulation: capture_end without capture_begin".into()))
    }

    fn replay(&self, graph: &Vec<Recorded>) -> Result<()> {
        graph.iter().try_for_each(|r| self.run(r))
    }
}

impl EmuDevice {
    /// Run one launch in the emulation.
    fn run(&self, r: &Recorded) -> Result<()> {
        let _guard = LAUNCH.lock().unwrap_or_else(|e| e.into_inner());
        // cuLaunchKernel convention: one pointer per parameter, pointing at its value
        let mut values = r.args.clone();
        let mut params: Vec<*mut c_void> = values
            .iter_mut()
            .map(|v| match v {
                RecordedArg::Mem(p) => p as *mut *mut u64 as *mut c_void,
                RecordedArg::I32(v) => v as *mut i32 as *mut c_void,
            })
            .collect();
        // SAFETY: our library's entry point, with the signature of cuda_emu.h's emu_launch
        let f: libloading::Symbol<LaunchFn> =
            unsafe { self.lib.get(b"emu_launch") }.map_err(|e| Error::Usage(e.to_string()))?;
        let cname = CString::new(r.name).unwrap();
        let (g, b) = (r.shape.grid, r.shape.block);
        let grid = [g.0, g.1, g.2];
        let block = [b.0, b.1, b.2];
        // SAFETY: the arguments follow the kernel's parameters (the caller of `launch` promised)
        let rc = unsafe {
            f(
                cname.as_ptr(),
                grid.as_ptr(),
                block.as_ptr(),
                r.shape.shared,
                params.as_mut_ptr(),
            )
        };
        if rc != 0 {
            return Err(Error::Usage(format!("emulation: no kernel named {}", r.name)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::{CpuBackend, BLOCK};
    use crate::backend::gpu::{GpuBackend, GPU_BLOCK};
    use crate::backend::{Backend, Stream};
    use crate::model::Model;
    use crate::table::Interval;

    fn tiny() -> Model {
        let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/tiny.safetensors")).unwrap();
        Model::from_bytes(&bytes).unwrap()
    }

    fn sequence(n: usize, seed: u32, vocab: usize) -> Vec<u32> {
        let mut x = seed.wrapping_mul(2654435761) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x % vocab as u32
            })
            .collect()
    }

    /// Streams of different lengths and block sizes, fed from several threads at once (so the
    /// worker batches rows of different chunks and positions together), each equal to the CPU.
    #[test]
    fn batched_streams_match_the_cpu() {
        for graphs in [false, true] {
            let Some(dev) = EmuDevice::open().unwrap() else { return };
            let model = tiny();
            let v = model.cfg.vocab;
            let cpu = CpuBackend::new(tiny());
            // two slots: streams also wait for a free slot
            let limits = crate::backend::gpu::Limits {
                slots: 2,
                max_rows: GPU_BLOCK + 10,
            };
            let gpu = GpuBackend::with_limits(dev, model, limits, graphs).unwrap();
            let jobs: Vec<(usize, usize)> = vec![(600, 256), (90, 1), (200, 17), (1, 1), (300, 64), (33, 5)];
            std::thread::scope(|s| {
                for (k, &(n, step)) in jobs.iter().enumerate() {
                    let (cpu, gpu) = (&cpu, &gpu);
                    s.spawn(move || {
                        let seq = sequence(n, k as u32 + 1, v);
                        let mut a = cpu.stream();
                        let mut b = gpu.stream();
                        for (i, c) in seq.chunks(step).enumerate() {
                            let mut ta = vec![0u32; c.len() * v];
                            let mut tb = vec![1u32; c.len() * v];
                            for (cc, t) in c.chunks(BLOCK).zip(ta.chunks_mut(BLOCK * v)) {
                                a.feed(cc, t).unwrap();
                            }
                            b.feed(c, &mut tb).unwrap();
                            assert!(ta == tb, "job {k}: block {i} differs from the CPU (graphs: {graphs})");
                        }
                    });
                }
            });
        }
    }

    /// Blend frames of format 19 on ask for the output layer's inputs instead of tables; batches
    /// that mix both kinds of rows give each stream the CPU's.
    #[test]
    fn head_inputs_match_the_cpu() {
        let Some(dev) = EmuDevice::open().unwrap() else { return };
        let model = tiny();
        let (v, d) = (model.cfg.vocab, model.cfg.d_model);
        on_four_stream_pairs(dev, |k, a, b| {
            let seq = sequence(150, k + 30, v);
            for (i, c) in seq.chunks(1 + 7 * k as usize).enumerate() {
                if (i + k as usize).is_multiple_of(3) {
                    let mut ta = vec![0u32; c.len() * v];
                    let mut tb = vec![1u32; c.len() * v];
                    a.feed(c, &mut ta).unwrap();
                    b.feed(c, &mut tb).unwrap();
                    assert!(ta == tb, "stream {k}: tables of block {i} differ");
                } else {
                    let mut ha = vec![0i8; c.len() * d];
                    let mut hb = vec![1i8; c.len() * d];
                    a.feed_head(c, &mut ha).unwrap();
                    b.feed_head(c, &mut hb).unwrap();
                    assert!(ha == hb, "stream {k}: head inputs of block {i} differ");
                    assert!(ha.iter().any(|&x| x != 0));
                }
            }
        });
    }

    /// `check(k, cpu, gpu)` on four threads at once (`k` = 0 to 3), each with a stream of the tiny
    /// model on the CPU and one on the emulated GPU (16 MiB, no graphs): the GPU's streams in
    /// flight together.
    fn on_four_stream_pairs(dev: EmuDevice, check: impl Fn(u32, &mut dyn Stream, &mut dyn Stream) + Sync) {
        let cpu = CpuBackend::new(tiny());
        let gpu = GpuBackend::new(dev, tiny(), 16 << 20, false).unwrap();
        std::thread::scope(|s| {
            for k in 0..4u32 {
                let (cpu, gpu, check) = (&cpu, &gpu, &check);
                s.spawn(move || check(k, &mut *cpu.stream(), &mut *gpu.stream()));
            }
        });
    }

    #[test]
    fn small_budgets_are_refused_clearly() {
        let Some(dev) = EmuDevice::open().unwrap() else { return };
        let e = GpuBackend::new(dev, tiny(), 1000, false)
            .err()
            .expect("1000 bytes cannot hold the model");
        assert!(e.to_string().contains("--gpu-mem"), "{e}");
    }

    /// Whole archives: the emulated GPU backend writes the CPU's bytes (here: the golden archive).
    #[test]
    fn archives_match_the_cpu() {
        let Some(dev) = EmuDevice::open().unwrap() else { return };
        let gpu = GpuBackend::new(dev, tiny(), 64 << 20, false).unwrap();
        let golden = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/golden/sample.txt");
        let data = std::fs::read(golden).unwrap();
        let opts = crate::codec::Options {
            chunk_size: 4096, // as the golden archive was made
            ..Default::default()
        };
        let mut out = Vec::new();
        let stats = crate::codec::compress(&gpu, crate::codec::Input::Slice(&data), &mut out, &opts).unwrap();
        assert!(stats.tokens > 0, "no chunk went through the model");
        assert!(
            out == std::fs::read(format!("{golden}.nnz")).unwrap(),
            "the emulated GPU archive differs from the CPU's"
        );
    }

    /// Decoding steps one token per chunk; several model-coded chunks decode side by side, so
    /// their steps share batches.
    #[test]
    fn decodes_cpu_archives() {
        let Some(dev) = EmuDevice::open().unwrap() else { return };
        let gpu = GpuBackend::new(dev, tiny(), 64 << 20, false).unwrap();
        let cpu = CpuBackend::new(tiny());
        let text = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/golden/sample.txt")).unwrap();
        let data = &text[..1600];
        let opts = crate::codec::Options {
            chunk_size: 400,
            ..Default::default()
        };
        let mut archive = Vec::new();
        let stats = crate::codec::compress(&cpu, crate::codec::Input::Slice(data), &mut archive, &opts).unwrap();
        assert!(
            stats.frames
                - stats.lzma_frames
                - stats.cm_frames
                - stats.deep_cm_frames
                - stats.mid_cm_frames
                - stats.stored_frames
                >= 2,
            "{stats:?}"
        );
        let mut back = Vec::new();
        crate::codec::decompress(&gpu, &mut archive.as_slice(), Some(&mut back), &opts).unwrap();
        assert!(back == data);
    }

    /// Direct frames (`--direct`) ask the device for intervals and searches instead of tables.
    #[test]
    fn intervals_and_searches_match_the_cpu() {
        let Some(dev) = EmuDevice::open().unwrap() else { return };
        let v = tiny().cfg.vocab;
        on_four_stream_pairs(dev, |k, a, b| {
            let seq = sequence(130, k + 10, v);
            // a block of intervals, then searches one position at a time (incl. targets
            // past the table's total), then tables again: one stream state throughout
            let syms = sequence(64, k + 20, v);
            let mut ia = vec![Interval::default(); 64];
            let mut ib = vec![Interval::default(); 64];
            a.feed_intervals(&seq[..64], &syms, &mut ia).unwrap();
            b.feed_intervals(&seq[..64], &syms, &mut ib).unwrap();
            assert_eq!(ia, ib);
            for (i, &t) in seq[64..100].iter().enumerate() {
                let target = match i % 3 {
                    0 => 0,
                    1 => (t * 40_503) % (1 << 24),
                    _ => (1 << 24) - 1 - i as u32,
                };
                assert_eq!(a.feed_search(t, target).unwrap(), b.feed_search(t, target).unwrap());
            }
            let mut ta = vec![0u32; 30 * v];
            let mut tb = vec![0u32; 30 * v];
            a.feed(&seq[100..], &mut ta).unwrap();
            b.feed(&seq[100..], &mut tb).unwrap();
            assert!(ta == tb);
        });
    }

    /// `--direct` archives: the emulated GPU writes the golden direct-frame archive, and decodes it
    /// along with other chunks in flight.
    #[test]
    fn direct_archives_match_the_cpu() {
        let Some(dev) = EmuDevice::open().unwrap() else { return };
        let gpu = GpuBackend::new(dev, tiny(), 64 << 20, false).unwrap();
        let golden = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/golden/sample.txt");
        let data = std::fs::read(golden).unwrap();
        let opts = crate::codec::Options {
            chunk_size: 4096,
            direct: true,
            only: Some(crate::codec::Method::Model),
            ..Default::default()
        };
        let mut out = Vec::new();
        let stats = crate::codec::compress(&gpu, crate::codec::Input::Slice(&data), &mut out, &opts).unwrap();
        assert!(stats.direct_frames > 0);
        assert!(
            out == std::fs::read(format!("{golden}.direct.nnz")).unwrap(),
            "the emulated GPU archive differs from the CPU's"
        );
        let small = crate::codec::Options {
            chunk_size: 500,
            ..opts
        };
        let mut archive = Vec::new();
        let cpu = CpuBackend::new(tiny());
        crate::codec::compress(&cpu, crate::codec::Input::Slice(&data[..2000]), &mut archive, &small).unwrap();
        // decoding steps replay recorded graphs (one per batch size)
        let dev = EmuDevice::open().unwrap().unwrap();
        let limits = crate::backend::gpu::Limits::for_budget(&tiny(), 64 << 20).unwrap();
        let gpu = GpuBackend::with_limits(dev, tiny(), limits, true).unwrap();
        let mut back = Vec::new();
        crate::codec::decompress(&gpu, &mut archive.as_slice(), Some(&mut back), &small).unwrap();
        assert!(back == data[..2000]);
    }

    /// A device that breaks after start-up: its launches panic once `broken` is set.
    struct Breaking {
        inner: EmuDevice,
        broken: std::sync::Arc<std::sync::atomic::AtomicBool>,
    }

    impl Device for Breaking {
        type Mem = EmuMem;
        type Graph = Vec<Recorded>;
        fn name(&self) -> String {
            self.inner.name()
        }
        fn alloc(&self, bytes: usize) -> Result<EmuMem> {
            self.inner.alloc(bytes)
        }
        fn upload(&self, dst: &mut EmuMem, src: &[u8]) -> Result<()> {
            self.inner.upload(dst, src)
        }
        fn download(&self, src: &EmuMem, dst: &mut [u8]) -> Result<()> {
            self.inner.download(src, dst)
        }
        unsafe fn launch(&self, name: &'static str, shape: Launch, args: &[Arg<'_, EmuMem>]) -> Result<()> {
            assert!(
                !self.broken.load(std::sync::atomic::Ordering::SeqCst),
                "planted failure"
            );
            self.inner.launch(name, shape, args)
        }
        fn capture_begin(&self) -> Result<()> {
            self.inner.capture_begin()
        }
        fn capture_end(&self) -> Result<Vec<Recorded>> {
            self.inner.capture_end()
        }
        fn replay(&self, graph: &Vec<Recorded>) -> Result<()> {
            self.inner.replay(graph)
        }
    }

    /// If the worker dies, streams get an error at once (now and later), never a hang.
    #[test]
    fn a_dead_worker_fails_streams_instead_of_hanging() {
        let Some(inner) = EmuDevice::open().unwrap() else {
            return;
        };
        let broken = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let dev = Breaking {
            inner,
            broken: broken.clone(),
        };
        let gpu = GpuBackend::new(dev, tiny(), 16 << 20, false).unwrap();
        broken.store(true, std::sync::atomic::Ordering::SeqCst);
        let v = gpu.model().cfg.vocab;
        let mut s = gpu.stream();
        let mut t = vec![0u32; v];
        assert!(s.feed(&[1], &mut t).is_err());
        assert!(s.feed(&[2], &mut t).is_err());
        assert!(gpu.stream().feed_search(3, 0).is_err());
    }
}
