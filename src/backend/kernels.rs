//! The CUDA C sources of kernels/ (embedded in the binary) and their compilation with NVRTC.
//! `tests/kernels.rs` compiles every one through this same path, so CI proves they compile even
//! without a GPU.

use crate::error::{Error, Result};

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

/// Compile one kernel file to PTX for `arch` (e.g. "compute_80").
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
