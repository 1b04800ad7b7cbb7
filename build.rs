//! When nvcc is available at build time (the NVCC variable, $CUDA_HOME/bin/nvcc, or nvcc on the
//! PATH), compile every kernels/*.cu file to PTX and embed it, so `--device cuda` then needs no
//! NVRTC at run time. Without nvcc (or if it fails) nothing is embedded and the program compiles
//! the kernels with NVRTC when it starts; the build never fails for want of CUDA.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The PTX target: the oldest GPUs CUDA 13 supports (Turing); the driver JIT-compiles it for any
/// newer GPU. Must equal `kernels::EMBEDDED_ARCH`.
const ARCH: &str = "compute_75";

fn nvcc() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NVCC") {
        return Some(PathBuf::from(p));
    }
    if let Some(home) = std::env::var_os("CUDA_HOME") {
        let p = Path::new(&home).join("bin/nvcc");
        if p.exists() {
            return Some(p);
        }
    }
    let on_path = Command::new("nvcc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    on_path.then(|| PathBuf::from("nvcc"))
}

fn main() {
    println!("cargo:rerun-if-changed=kernels");
    println!("cargo:rerun-if-env-changed=NVCC");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let mut files: Vec<PathBuf> = std::fs::read_dir("kernels")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cu"))
        .collect();
    files.sort();
    let mut embedded = Vec::new();
    if let Some(nvcc) = nvcc() {
        for f in &files {
            let name = f.file_name().unwrap().to_str().unwrap().to_string();
            let ptx = out.join(format!("{name}.ptx"));
            let res = Command::new(&nvcc)
                .args(["--ptx", &format!("-arch={ARCH}"), "-std=c++17", "-I", "kernels", "-o"])
                .arg(&ptx)
                .arg(f)
                .output();
            match res {
                Ok(o) if o.status.success() => embedded.push((name, ptx)),
                Ok(o) => {
                    println!(
                        "cargo:warning=nvcc failed on {name}; kernels will be compiled by NVRTC at run time: {}",
                        String::from_utf8_lossy(&o.stderr).lines().next().unwrap_or("")
                    );
                    embedded.clear();
                    break;
                }
                Err(e) => {
                    println!("cargo:warning=cannot run {}: {e}", nvcc.display());
                    embedded.clear();
                    break;
                }
            }
        }
    }
    let mut src =
        String::from("/// PTX built by build.rs with nvcc: (kernel file, PTX); empty when nvcc was not found.\n");
    src += "pub const EMBEDDED: &[(&str, &str)] = &[\n";
    for (name, ptx) in &embedded {
        src += &format!("    ({name:?}, include_str!({:?})),\n", ptx.display().to_string());
    }
    src += "];\n";
    std::fs::write(out.join("embedded_ptx.rs"), src).unwrap();
}
