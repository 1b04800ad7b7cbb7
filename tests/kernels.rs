//! Every CUDA kernel compiles through the program's own paths: NVRTC for every architecture the
//! program can choose (runs wherever libnvrtc can be loaded; CI installs it from PyPI, and with
//! NNZ_REQUIRE_NVRTC=1 a missing NVRTC is a failure), and the PTX that build.rs embeds when nvcc
//! was there at build time (NNZ_REQUIRE_NVCC=1 makes its absence a failure).

use nnz::backend::kernels::{self, arch_for, PtxSource, ARCHS, EMBEDDED, KERNELS};

fn assert_entries(what: &str, ptx: &str, fns: &[&str]) {
    for f in fns {
        assert!(
            ptx.contains(&format!(".entry {f}")),
            "{what}: kernel {f} missing from the PTX"
        );
    }
}

#[test]
fn all_kernels_compile_with_nvrtc_for_every_target() {
    if !kernels::nvrtc_present() {
        assert!(
            std::env::var("NNZ_REQUIRE_NVRTC").is_err(),
            "NNZ_REQUIRE_NVRTC is set but libnvrtc was not found"
        );
        eprintln!("libnvrtc not found; skipping the kernel compile check");
        return;
    }
    for (name, src, fns) in KERNELS {
        for (_, arch) in ARCHS {
            let ptx = kernels::compile(name, src, arch).unwrap_or_else(|e| panic!("{arch}: {e}"));
            assert_entries(&format!("{name} for {arch}"), &ptx.to_src(), fns);
        }
    }
}

#[test]
fn compiled_ptx_is_cached_on_disk() {
    if !kernels::nvrtc_present() {
        return; // covered by the test above
    }
    let dir = std::env::temp_dir().join(format!("nnz-ptx-cache-{}", std::process::id()));
    let (name, src, fns) = KERNELS[0];
    let cached = |arch| {
        kernels::compile_cached_in(Some(&dir), name, src, arch)
            .unwrap()
            .to_src()
    };
    let first = cached("compute_80");
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    // a cached file is used as it is: change it, and the change comes back
    let marked = format!("{first}\n// from the cache\n");
    std::fs::write(&files[0], &marked).unwrap();
    assert_eq!(cached("compute_80"), marked);
    // another target is another file
    assert_entries(name, &cached("compute_90"), fns);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn built_in_ptx_covers_every_kernel() {
    if EMBEDDED.is_empty() {
        assert!(
            std::env::var("NNZ_REQUIRE_NVCC").is_err(),
            "NNZ_REQUIRE_NVCC is set but the build embedded no PTX (was nvcc found? see build.rs)"
        );
        eprintln!("built without nvcc; no embedded PTX to check");
        return;
    }
    for (name, src, fns) in KERNELS {
        let ptx = PtxSource::Embedded.ptx(name, src, None).unwrap().to_src();
        assert!(ptx.contains(&format!(".target {}", kernels::EMBEDDED_ARCH.replace("compute", "sm"))));
        assert_entries(name, &ptx, fns);
    }
}

#[test]
fn targets_follow_the_compute_capability() {
    assert_eq!(arch_for(7, 0), None);
    assert_eq!(arch_for(7, 5), Some("compute_75"));
    assert_eq!(arch_for(8, 6), Some("compute_86"));
    assert_eq!(arch_for(8, 9), Some("compute_89"));
    assert_eq!(arch_for(9, 0), Some("compute_90"));
    assert_eq!(arch_for(10, 3), Some("compute_100"));
    assert_eq!(arch_for(12, 1), Some("compute_120"));
    assert!(PtxSource::choose(6, 1, false).is_err());
    assert_eq!(PtxSource::choose(9, 0, true).unwrap(), PtxSource::Nvrtc("compute_90"));
}
