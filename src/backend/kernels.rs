//! The CUDA C sources of kernels/ (embedded in the binary) and how they become PTX: built in by
//! build.rs when nvcc was there at build time, else compiled with NVRTC at start-up for the GPU's
//! architecture and cached on disk. `tests/kernels.rs` compiles every kernel through these same
//! paths, so CI proves they compile even without a GPU.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

include!(concat!(env!("OUT_DIR"), "/embedded_ptx.rs"));

/// The architecture build.rs compiles `EMBEDDED` for (the driver JIT-compiles it for newer GPUs).
pub const EMBEDDED_ARCH: &str = "compute_75";

/// NVRTC targets by compute capability (major * 10 + minor): CUDA 13 supports Turing (7.5) on.
pub const ARCHS: &[(u32, &str)] = &[
    (75, "compute_75"),
    (80, "compute_80"),
    (86, "compute_86"),
    (87, "compute_87"),
    (89, "compute_89"),
    (90, "compute_90"),
    (100, "compute_100"),
    (120, "compute_120"),
];

/// The newest target a GPU of compute capability `major.minor` runs, or `None` below 7.5.
pub fn arch_for(major: u32, minor: u32) -> Option<&'static str> {
    let cc = major * 10 + minor;
    ARCHS.iter().rev().find(|(c, _)| *c <= cc).map(|(_, a)| *a)
}

const COMMON: &str = include_str!("../../kernels/common.cuh");

/// (file name, source, kernel names) for every kernel file.
pub const KERNELS: &[(&str, &str, &[&str])] = &[
    ("embed.cu", include_str!("../../kernels/embed.cu"), &["embed_forward"]),
    ("norm.cu", include_str!("../../kernels/norm.cu"), &["norm_forward"]),
    (
        "matmul.cu",
        include_str!("../../kernels/matmul.cu"),
        &[
            "matmul_forward",
            "requant_forward",
            "kv_store_forward",
            "residual_forward",
            "gelu_forward",
        ],
    ),
    (
        "attention.cu",
        include_str!("../../kernels/attention.cu"),
        &["attention_forward"],
    ),
    (
        "freq.cu",
        include_str!("../../kernels/freq.cu"),
        &["freq_forward", "pick_forward"],
    ),
];

/// One translation unit: common.cuh pasted in place of its `#include`.
pub fn source(src: &str) -> String {
    let common = COMMON.replace("#pragma once", "");
    src.replace("#include \"common.cuh\"", &common)
}

/// Whether the NVRTC library can be loaded (it is looked up at run time, never linked).
pub fn nvrtc_present() -> bool {
    // SAFETY: only tries to dlopen the library
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Compile one kernel file to PTX for `arch` (e.g. "compute_80") with NVRTC.
pub fn compile(name: &str, src: &str, arch: &'static str) -> Result<cudarc::nvrtc::Ptx> {
    if !nvrtc_present() {
        return Err(Error::Usage("the NVRTC library (libnvrtc) was not found".into()));
    }
    let opts = cudarc::nvrtc::CompileOptions {
        arch: Some(arch),
        options: vec!["--std=c++17".into()],
        name: Some(name.into()),
        ..Default::default()
    };
    cudarc::nvrtc::compile_ptx_with_opts(source(src), opts)
        .map_err(|e| Error::Usage(format!("compiling kernel {name} failed: {e}")))
}

fn nvrtc_version() -> (i32, i32) {
    let (mut major, mut minor) = (0, 0);
    // SAFETY: NVRTC is loaded (checked by the callers); the call writes two ints
    unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    (major, minor)
}

/// Where compiled PTX is kept between runs unless told otherwise: the platform's cache directory,
/// $XDG_CACHE_HOME/nnz/ptx, else ~/.cache/nnz/ptx.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("nnz").join("ptx"))
}

/// `compile`, through the disk cache in `dir` (`None`: no cache): the file is named by the SHA-256
/// of the source, the target, the options and the NVRTC version, so a change to any of them
/// compiles afresh. The cache is a convenience: if it cannot be read or written, the kernel is
/// simply compiled.
pub fn compile_cached_in(
    dir: Option<&std::path::Path>,
    name: &str,
    src: &str,
    arch: &'static str,
) -> Result<cudarc::nvrtc::Ptx> {
    if !nvrtc_present() {
        return Err(Error::Usage("the NVRTC library (libnvrtc) was not found".into()));
    }
    let mut h = Sha256::new();
    h.update(source(src).as_bytes());
    h.update(format!("\0{arch}\0--std=c++17\0{:?}", nvrtc_version()).as_bytes());
    let key: String = h.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.map(|d| d.join(format!("{name}-{key}.ptx")));
    if let Some(text) = path.as_ref().and_then(|p| std::fs::read_to_string(p).ok()) {
        if text.contains(".entry") {
            return Ok(cudarc::nvrtc::Ptx::from_src(text));
        }
    }
    let ptx = compile(name, src, arch)?;
    if let Some(p) = path {
        // write a temporary beside it, then rename: a reader never sees half a file
        let tmp = p.with_extension(format!("tmp{}", std::process::id()));
        let ok = p.parent().is_some_and(|d| std::fs::create_dir_all(d).is_ok())
            && std::fs::write(&tmp, ptx.to_src()).is_ok()
            && std::fs::rename(&tmp, &p).is_ok();
        if !ok {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    Ok(ptx)
}

/// Where the kernels' PTX comes from at start-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PtxSource {
    /// built in by build.rs (nvcc at build time)
    Embedded,
    /// compiled by NVRTC for the GPU's architecture (cached on disk)
    Nvrtc(&'static str),
}

impl PtxSource {
    /// Embedded PTX when there is some, unless `force_nvrtc`; NVRTC for the GPU's compute
    /// capability otherwise.
    pub fn choose(major: u32, minor: u32, force_nvrtc: bool) -> Result<PtxSource> {
        let arch = arch_for(major, minor)
            .ok_or_else(|| Error::Usage(format!("compute capability {major}.{minor} is too old (need 7.5+)")))?;
        Ok(if EMBEDDED.is_empty() || force_nvrtc {
            PtxSource::Nvrtc(arch)
        } else {
            PtxSource::Embedded
        })
    }

    /// The PTX of kernel file `name` (one of `KERNELS`); NVRTC's is cached in `cache`.
    pub fn ptx(self, name: &str, src: &str, cache: Option<&std::path::Path>) -> Result<cudarc::nvrtc::Ptx> {
        match self {
            PtxSource::Embedded => EMBEDDED
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, p)| cudarc::nvrtc::Ptx::from_src(*p))
                .ok_or_else(|| Error::Usage(format!("kernel file {name} was not built in"))),
            PtxSource::Nvrtc(arch) => compile_cached_in(cache, name, src, arch),
        }
    }
}
