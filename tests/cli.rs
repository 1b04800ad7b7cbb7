//! The `nnz` command line: naming, flags, pipes, tar, and every bad-input case. Each failure must
//! be one line on stderr, exit status 1, no panic, and no output file left behind.

mod common;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn nnz() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nnz"));
    c.arg("--model").arg(common::tiny_model_path());
    c
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

fn run_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let t = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    t.join().unwrap();
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failure as users must see it: exit 1, one line, no panic text.
fn assert_clean_failure(o: &Output, expect: &str) {
    let e = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected exit 1, got {:?}; stderr: {e}",
        o.status
    );
    assert!(
        !e.contains("panicked") && !e.contains("backtrace") && !e.contains("internal error"),
        "{e}"
    );
    assert_eq!(e.trim_end().lines().count(), 1, "expected one line, got: {e}");
    assert!(
        e.to_lowercase().contains(&expect.to_lowercase()),
        "expected '{expect}' in: {e}"
    );
}

/// A fresh directory for one test, removed when the test ends.
struct TmpDir(PathBuf);

impl std::ops::Deref for TmpDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn tmpdir(name: &str) -> TmpDir {
    let d = std::env::temp_dir().join(format!("nnz-cli-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    TmpDir(d)
}

fn no_temp_files(dir: &Path) {
    for e in fs::read_dir(dir).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!n.ends_with(".nnztmp"), "temporary file left behind: {n}");
    }
}

fn sample() -> Vec<u8> {
    fs::read(common::root().join("testdata/golden/sample.txt")).unwrap()
}

#[test]
fn compress_and_decompress_files_by_name() {
    let d = tmpdir("names");
    let f = d.join("a.txt");
    fs::write(&f, sample()).unwrap();
    let o = run(nnz().arg("c").arg(&f));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(f.exists(), "input is kept by default");
    let z = d.join("a.txt.nnz");
    assert!(z.exists());
    // refuses to overwrite without -f
    let o = run(nnz().arg("c").arg(&f));
    assert_clean_failure(&o, "already exists");
    assert!(run(nnz().arg("-f").arg(&f)).status.success());
    fs::remove_file(&f).unwrap();
    let o = run(nnz().arg("d").arg(&z));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fs::read(&f).unwrap(), sample());
    // --rm removes the input after success; -d is the flag form
    fs::remove_file(&f).unwrap();
    assert!(run(nnz().args(["-d", "--rm"]).arg(&z)).status.success());
    assert!(!z.exists() && f.exists());
    // -o names the output; -t tests; -l lists
    let out = d.join("custom.bin");
    assert!(run(nnz().arg(&f).arg("-o").arg(&out)).status.success());
    assert!(run(nnz().arg("-t").arg(&out)).status.success());
    let l = run(nnz().arg("-l").arg(&out));
    assert!(l.status.success());
    assert!(String::from_utf8_lossy(&l.stdout).contains(&sample().len().to_string()));
    // unknown suffix on decompression
    assert_clean_failure(&run(nnz().arg("-d").arg(&out)), "suffix");
    // already compressed suffix on compression
    let o = run(nnz().arg(d.join("a.txt.nnz")));
    assert_eq!(o.status.code(), Some(1));
    no_temp_files(&d);
}

#[test]
fn pipes_stdin_to_stdout() {
    let data = sample();
    let c = run_stdin(nnz().arg("-c"), &data);
    assert!(c.status.success(), "{}", stderr(&c));
    assert!(c.stderr.is_empty(), "silent in pipes");
    let d = run_stdin(nnz().arg("-d"), &c.stdout);
    assert!(d.status.success(), "{}", stderr(&d));
    assert_eq!(d.stdout, data);
    // '-' is stdin too, and an empty input round-trips
    let c = run_stdin(nnz().arg("-"), b"");
    assert!(c.status.success());
    let d = run_stdin(nnz().args(["-d", "-"]), &c.stdout);
    assert!(d.status.success() && d.stdout.is_empty());
}

#[test]
fn direct_mode_and_gpu_memory_flags() {
    let data = sample();
    let c = run_stdin(nnz().args(["-c", "--direct", "--gpu-mem", "512M"]), &data);
    assert!(c.status.success(), "{}", stderr(&c));
    let d = run_stdin(nnz().arg("-d"), &c.stdout);
    assert!(d.status.success(), "{}", stderr(&d));
    assert_eq!(d.stdout, data);
    // a size nnz cannot read is a usage error (clap's exit status 2), not a panic
    let bad = run_stdin(nnz().args(["-c", "--gpu-mem", "lots"]), &data);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("--gpu-mem") && !stderr(&bad).contains("panicked"));
}

#[test]
fn archive_does_not_depend_on_thread_count() {
    let data = [sample(), sample(), sample()].concat();
    let a = run_stdin(nnz().args(["-c", "-T", "1", "--chunk-kib", "2"]), &data);
    let b = run_stdin(nnz().args(["-c", "-T", "2", "--chunk-kib", "2"]), &data);
    let c = run_stdin(nnz().args(["-c", "-T", "3", "--chunk-kib", "2"]), &data);
    assert!(a.status.success() && b.status.success() && c.status.success());
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(a.stdout, c.stdout);
}

#[test]
fn tar_pipeline() {
    if Command::new("tar").arg("--version").output().is_err() {
        eprintln!("tar not installed; skipping");
        return;
    }
    let d = tmpdir("tar");
    let src = d.join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("one.txt"), sample()).unwrap();
    fs::write(src.join("sub/two.bin"), common::Lcg(1).bytes(5000)).unwrap();
    let prog = format!(
        "{} --model {}",
        env!("CARGO_BIN_EXE_nnz"),
        common::tiny_model_path().display()
    );
    let archive = d.join("x.tar.nnz");
    let o = run(Command::new("tar")
        .arg("-I")
        .arg(&prog)
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(&*d)
        .arg("src"));
    assert!(o.status.success(), "tar -c: {}", stderr(&o));
    let out = d.join("out");
    fs::create_dir_all(&out).unwrap();
    let o = run(Command::new("tar")
        .arg("-I")
        .arg(&prog)
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&out));
    assert!(o.status.success(), "tar -x: {}", stderr(&o));
    assert_eq!(fs::read(out.join("src/one.txt")).unwrap(), sample());
    assert_eq!(
        fs::read(out.join("src/sub/two.bin")).unwrap(),
        common::Lcg(1).bytes(5000)
    );
}

#[test]
fn bad_inputs_fail_with_one_clear_line() {
    let d = tmpdir("bad");
    let f = d.join("s.txt");
    fs::write(&f, sample()).unwrap();
    assert!(run(nnz().arg("-k").arg(&f)).status.success());
    let z = d.join("s.txt.nnz");
    let good = fs::read(&z).unwrap();
    let target = d.join("s.txt");
    fs::remove_file(&target).unwrap();

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "not an archive",
            b"hello, I am plain text and not an archive".to_vec(),
            "not an nnz archive",
        ),
        ("truncated", good[..good.len() / 2].to_vec(), "truncated"),
        ("header only", good[..10].to_vec(), "truncated"),
        (
            "future version",
            {
                let mut b = good.clone();
                b[4] = 77;
                b
            },
            "newer",
        ),
        (
            "corrupt payload",
            {
                let mut b = good.clone();
                let n = b.len();
                b[n / 2] ^= 0x55;
                b
            },
            "corrupt",
        ),
        (
            "bad checksum",
            {
                let mut b = good.clone();
                let n = b.len();
                b[n - 3] ^= 1;
                b
            },
            "checksum",
        ),
        ("empty file", vec![], "truncated"),
    ];
    for (name, bytes, expect) in cases {
        let bad = d.join(format!("{}.nnz", name.replace(' ', "_")));
        fs::write(&bad, &bytes).unwrap();
        let o = run(nnz().arg("-d").arg(&bad));
        assert_clean_failure(&o, expect);
        let out = d.join(name.replace(' ', "_"));
        assert!(!out.exists(), "{name}: partial output left behind");
        let o = run(nnz().arg("-t").arg(&bad));
        assert_eq!(o.status.code(), Some(1), "{name}: -t must fail");
    }
    // an archive made with another model
    let other = run(Command::new(env!("CARGO_BIN_EXE_nnz")).arg("-d").arg("-c").arg(&z));
    assert_clean_failure(&other, "model");
    // missing file, directory
    assert_clean_failure(&run(nnz().arg(d.join("missing.txt"))), "no such file");
    assert_clean_failure(&run(nnz().arg(&*d)), "directory");
    // a model file that is not a model
    fs::write(&f, sample()).unwrap();
    let o = run(Command::new(env!("CARGO_BIN_EXE_nnz"))
        .arg("--model")
        .arg(&f)
        .arg("-c")
        .arg(&f));
    assert_clean_failure(&o, "model");
    // a full disk: writing to /dev/full fails cleanly
    if Path::new("/dev/full").exists() {
        let o = run(nnz()
            .arg("-c")
            .arg(&f)
            .stdout(fs::OpenOptions::new().write(true).open("/dev/full").unwrap()));
        assert_clean_failure(&o, "space");
    }
    no_temp_files(&d);
}

#[test]
fn interrupt_leaves_no_output() {
    let d = tmpdir("int");
    let f = d.join("big.txt");
    let mut data = Vec::new();
    while data.len() < 3_000_000 {
        data.extend(sample());
    }
    fs::write(&f, &data).unwrap();
    let mut child = nnz().arg(&f).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    let _ = Command::new("kill").arg("-INT").arg(child.id().to_string()).status();
    let st = child.wait().unwrap();
    assert!(!st.success());
    assert!(!d.join("big.txt.nnz").exists(), "partial output left after Ctrl-C");
    no_temp_files(&d);
}

#[test]
fn cuda_request_fails_clearly_without_a_gpu_backend() {
    let o = run_stdin(nnz().args(["--device", "cuda", "-c"]), b"x");
    assert_clean_failure(&o, "cuda");
}
