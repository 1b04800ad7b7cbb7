//! The CUDA backend: the integer model of docs/MODEL.md as the kernels of kernels/, launched
//! through cudarc. The CUDA driver and NVRTC are loaded at run time, so the same binary starts on
//! machines without CUDA. Each launcher below is named after the CPU step it mirrors
//! (src/backend/cpu.rs); results must equal the CPU's bit for bit, and `CudaBackend::new` checks
//! that on a short sequence before it lets anyone use the GPU.
//!
//! This first version runs one chunk's block of positions per call (a correct baseline);
//! batching many chunks per launch is the GPU-speed work that follows.

use super::cpu::{CpuBackend, BLOCK};
use super::{kernels, Backend, Stream};
use crate::error::{Error, Result};
use crate::model::{Linear, Model};
use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

fn gpu_err(e: impl std::fmt::Display) -> Error {
    Error::Usage(format!("CUDA: {e}"))
}

struct DevLinear {
    w: CudaSlice<i8>,
    m: CudaSlice<i32>,
    n_in: usize,
    n_out: usize,
}

struct DevLayer {
    wq: DevLinear,
    wk: DevLinear,
    wv: DevLinear,
    qk_m: CudaSlice<i32>,
    bias: CudaSlice<i32>,
    wo: DevLinear,
    w1: DevLinear,
    w2: DevLinear,
}

pub struct CudaBackend {
    model: Model,
    stream: Arc<CudaStream>,
    funcs: HashMap<&'static str, CudaFunction>,
    emb: DevLinear,
    layers: Vec<DevLayer>,
    head: DevLinear,
    gelu: CudaSlice<i8>,
    exp_attn: CudaSlice<i32>,
    exp_out: CudaSlice<i32>,
    device: String,
    /// one feed at a time on the single CUDA stream
    lock: Mutex<()>,
}

/// Whether a CUDA driver library is installed at all (without it there is nothing to try).
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen libcuda
    unsafe { cudarc::driver::sys::is_culib_present() }
}

impl CudaBackend {
    /// Start on GPU `ordinal`, compile the kernels, upload the model, and check the GPU against the
    /// CPU reference on a short sequence.
    pub fn new(model: Model, ordinal: usize) -> Result<CudaBackend> {
        if !driver_present() {
            return Err(Error::Usage("no CUDA driver (libcuda) found".into()));
        }
        if !kernels::nvrtc_present() {
            return Err(Error::Usage(
                "the CUDA runtime compiler (libnvrtc) was not found".into(),
            ));
        }
        let ctx = CudaContext::new(ordinal).map_err(gpu_err)?;
        let device = ctx.name().map_err(gpu_err)?;
        let (major, _) = ctx.compute_capability().map_err(gpu_err)?;
        if major < 7 {
            return Err(Error::Usage(format!(
                "{device}: compute capability {major}.x is too old (need 7.0+)"
            )));
        }
        let stream = ctx.default_stream();
        let mut funcs = HashMap::new();
        for (name, src, fns) in kernels::KERNELS {
            let ptx = kernels::compile(name, src, "compute_70")?;
            let module = ctx.load_module(ptx).map_err(gpu_err)?;
            for f in *fns {
                funcs.insert(*f, module.load_function(f).map_err(gpu_err)?);
            }
        }
        let up_lin = |l: &Linear| -> Result<DevLinear> {
            Ok(DevLinear {
                w: stream.clone_htod(&l.w).map_err(gpu_err)?,
                m: stream.clone_htod(&l.m).map_err(gpu_err)?,
                n_in: l.n_in,
                n_out: l.n_out,
            })
        };
        let mut layers = Vec::new();
        for l in &model.layers {
            layers.push(DevLayer {
                wq: up_lin(&l.wq)?,
                wk: up_lin(&l.wk)?,
                wv: up_lin(&l.wv)?,
                qk_m: stream.clone_htod(&l.qk_m).map_err(gpu_err)?,
                bias: stream.clone_htod(&l.bias).map_err(gpu_err)?,
                wo: up_lin(&l.wo)?,
                w1: up_lin(&l.w1)?,
                w2: up_lin(&l.w2)?,
            });
        }
        let backend = CudaBackend {
            emb: up_lin(&model.emb)?,
            head: up_lin(&model.head)?,
            gelu: stream.clone_htod(&model.gelu).map_err(gpu_err)?,
            exp_attn: stream.clone_htod(&model.exp_attn).map_err(gpu_err)?,
            exp_out: stream.clone_htod(&model.exp_out).map_err(gpu_err)?,
            layers,
            funcs,
            stream,
            device: format!("{device} (GPU {ordinal})"),
            lock: Mutex::new(()),
            model,
        };
        backend.self_check()?;
        Ok(backend)
    }

    /// The GPU must give the CPU's tables on a sequence longer than one block.
    fn self_check(&self) -> Result<()> {
        let v = self.model.cfg.vocab;
        let n = (BLOCK + 37).min(4 * self.model.cfg.window);
        let inputs: Vec<u32> = (0..n as u32).map(|i| (i * 7919 + 13) % (v as u32)).collect();
        let cpu = CpuBackend::new_ref(&self.model);
        let mut a = cpu.stream();
        let mut b = self.stream();
        for c in inputs.chunks(BLOCK) {
            let mut ta = vec![0u32; c.len() * v];
            let mut tb = vec![0u32; c.len() * v];
            a.feed(c, &mut ta)?;
            b.feed(c, &mut tb)?;
            if ta != tb {
                return Err(Error::Usage(format!(
                    "{}: GPU results differ from the CPU reference",
                    self.device
                )));
            }
        }
        Ok(())
    }

    fn func(&self, name: &str) -> &CudaFunction {
        &self.funcs[name]
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> String {
        self.device.clone()
    }
    fn model(&self) -> &Model {
        &self.model
    }
    fn stream(&self) -> Box<dyn Stream + '_> {
        Box::new(CudaChunk {
            b: self,
            pos: 0,
            rings: None,
        })
    }
}

struct CudaChunk<'b> {
    b: &'b CudaBackend,
    pos: usize,
    /// per layer (k ring, v ring), allocated on first use
    rings: Option<Vec<(CudaSlice<i8>, CudaSlice<i8>)>>,
}

fn grid1(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (n.div_ceil(256) as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

impl CudaChunk<'_> {
    fn cap(&self) -> usize {
        self.b.model.cfg.window + BLOCK
    }

    fn feed_gpu(&mut self, inputs: &[u32], tables: &mut [u32]) -> std::result::Result<(), cudarc::driver::DriverError> {
        let b = self.b;
        let c = &b.model.cfg;
        let s = &b.stream;
        let p = inputs.len();
        let (d, qd, kvd) = (c.d_model, c.q_dim(), c.kv_dim());
        let cap = self.cap();
        if self.rings.is_none() {
            let mut r = Vec::new();
            for _ in 0..c.n_layers {
                r.push((s.alloc_zeros::<i8>(cap * kvd)?, s.alloc_zeros::<i8>(cap * kvd)?));
            }
            self.rings = Some(r);
        }
        let max_out = [qd, d, c.d_ff, c.vocab].into_iter().max().unwrap();
        let tokens = s.clone_htod(inputs)?;
        let mut x = s.alloc_zeros::<i32>(p * d)?;
        let mut a = s.alloc_zeros::<i8>(p * d)?;
        let mut acc = s.alloc_zeros::<i32>(p * max_out)?;
        let mut q = s.alloc_zeros::<i8>(p * qd)?;
        let mut o = s.alloc_zeros::<i8>(p * qd)?;
        let mut hid = s.alloc_zeros::<i8>(p * c.d_ff)?;
        let mut tab = s.alloc_zeros::<u32>(p * c.vocab)?;
        let (pi, di) = (p as i32, d as i32);
        let pos0 = self.pos as i64;
        let cap_i = cap as i32;
        // SAFETY (all launches): argument lists match the kernels' signatures in kernels/*.cu, and
        // every buffer holds at least the elements the launch shape touches.
        unsafe {
            // embedding (cpu: the `x = clamp_res(rq(E[t][i], m_e[t]))` loop)
            s.launch_builder(b.func("embed_forward"))
                .arg(&tokens)
                .arg(&b.emb.w)
                .arg(&b.emb.m)
                .arg(&mut x)
                .arg(&pi)
                .arg(&di)
                .launch(grid1(p * d))?;
            let rings = self.rings.as_mut().unwrap();
            for (l, layer) in b.layers.iter().enumerate() {
                norm_rows(b, &x, &mut a, p, d)?;
                matmul(b, &a, &layer.wq, &mut acc, p)?;
                let (n, pi) = (layer.wq.n_out as i32, p as i32);
                s.launch_builder(b.func("requant_forward"))
                    .arg(&acc)
                    .arg(&layer.wq.m)
                    .arg(&mut q)
                    .arg(&pi)
                    .arg(&n)
                    .launch(grid1(p * qd))?;
                let (kr, vr) = &mut rings[l];
                for (w, ring) in [(&layer.wk, kr), (&layer.wv, vr)] {
                    matmul(b, &a, w, &mut acc, p)?;
                    let n = w.n_out as i32;
                    s.launch_builder(b.func("kv_store_forward"))
                        .arg(&acc)
                        .arg(&w.m)
                        .arg(ring)
                        .arg(&pi)
                        .arg(&n)
                        .arg(&pos0)
                        .arg(&cap_i)
                        .launch(grid1(p * kvd))?;
                }
                let (w_i, h_i, g_i, e_i) = (
                    c.window as i32,
                    c.n_heads as i32,
                    c.n_kv_heads as i32,
                    c.head_dim as i32,
                );
                let n_exp = b.model.exp_attn.len() as i32;
                let cfg = LaunchConfig {
                    grid_dim: (p as u32, c.n_heads as u32, 1),
                    block_dim: (128, 1, 1),
                    shared_mem_bytes: (c.window * 8) as u32,
                };
                let (kr, vr) = &rings[l];
                s.launch_builder(b.func("attention_forward"))
                    .arg(&q)
                    .arg(kr)
                    .arg(vr)
                    .arg(&layer.qk_m)
                    .arg(&layer.bias)
                    .arg(&b.exp_attn)
                    .arg(&n_exp)
                    .arg(&mut o)
                    .arg(&pos0)
                    .arg(&cap_i)
                    .arg(&w_i)
                    .arg(&h_i)
                    .arg(&g_i)
                    .arg(&e_i)
                    .launch(cfg)?;
                matmul(b, &o, &layer.wo, &mut acc, p)?;
                residual(b, &mut x, &acc, &layer.wo, p)?;
                norm_rows(b, &x, &mut a, p, d)?;
                matmul(b, &a, &layer.w1, &mut acc, p)?;
                let n = layer.w1.n_out as i32;
                s.launch_builder(b.func("gelu_forward"))
                    .arg(&acc)
                    .arg(&layer.w1.m)
                    .arg(&b.gelu)
                    .arg(&mut hid)
                    .arg(&pi)
                    .arg(&n)
                    .launch(grid1(p * c.d_ff))?;
                matmul(b, &hid, &layer.w2, &mut acc, p)?;
                residual(b, &mut x, &acc, &layer.w2, p)?;
            }
            norm_rows(b, &x, &mut a, p, d)?;
            matmul(b, &a, &b.head, &mut acc, p)?;
            let (n_exp, v_i) = (b.model.exp_out.len() as i32, c.vocab as i32);
            let cfg = LaunchConfig {
                grid_dim: (p as u32, 1, 1),
                block_dim: (256, 1, 1),
                shared_mem_bytes: 0,
            };
            s.launch_builder(b.func("freq_forward"))
                .arg(&acc)
                .arg(&b.head.m)
                .arg(&b.exp_out)
                .arg(&n_exp)
                .arg(&mut tab)
                .arg(&v_i)
                .launch(cfg)?;
        }
        s.memcpy_dtoh(&tab, tables)?;
        s.synchronize()?;
        Ok(())
    }
}

/// cpu::norm_rows
unsafe fn norm_rows(
    b: &CudaBackend,
    x: &CudaSlice<i32>,
    a: &mut CudaSlice<i8>,
    p: usize,
    d: usize,
) -> std::result::Result<(), cudarc::driver::DriverError> {
    let di = d as i32;
    let cfg = LaunchConfig {
        grid_dim: (p as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    b.stream
        .launch_builder(b.func("norm_forward"))
        .arg(x)
        .arg(a)
        .arg(&di)
        .launch(cfg)?;
    Ok(())
}

/// cpu::matmul
unsafe fn matmul(
    b: &CudaBackend,
    a: &CudaSlice<i8>,
    w: &DevLinear,
    acc: &mut CudaSlice<i32>,
    p: usize,
) -> std::result::Result<(), cudarc::driver::DriverError> {
    let (pi, ni, no) = (p as i32, w.n_in as i32, w.n_out as i32);
    let cfg = LaunchConfig {
        grid_dim: (w.n_out.div_ceil(16) as u32, p.div_ceil(16) as u32, 1),
        block_dim: (16, 16, 1),
        shared_mem_bytes: 0,
    };
    b.stream
        .launch_builder(b.func("matmul_forward"))
        .arg(a)
        .arg(&w.w)
        .arg(acc)
        .arg(&pi)
        .arg(&ni)
        .arg(&no)
        .launch(cfg)?;
    Ok(())
}

/// cpu::add_residual
unsafe fn residual(
    b: &CudaBackend,
    x: &mut CudaSlice<i32>,
    acc: &CudaSlice<i32>,
    w: &DevLinear,
    p: usize,
) -> std::result::Result<(), cudarc::driver::DriverError> {
    let (pi, n) = (p as i32, w.n_out as i32);
    b.stream
        .launch_builder(b.func("residual_forward"))
        .arg(x)
        .arg(acc)
        .arg(&w.m)
        .arg(&pi)
        .arg(&n)
        .launch(grid1(p * w.n_out))?;
    Ok(())
}

impl Stream for CudaChunk<'_> {
    fn max_block(&self) -> usize {
        BLOCK
    }

    fn feed(&mut self, inputs: &[u32], tables: &mut [u32]) -> Result<()> {
        let c = &self.b.model.cfg;
        assert!(inputs.len() <= BLOCK && tables.len() == inputs.len() * c.vocab);
        if let Some(&bad) = inputs.iter().find(|&&t| t as usize >= c.vocab) {
            return Err(Error::corrupt(format!("token id {bad} out of range")));
        }
        let _guard = self.b.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.feed_gpu(inputs, tables).map_err(gpu_err)?;
        self.pos += inputs.len();
        Ok(())
    }
}
