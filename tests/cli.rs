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

/// Mode and times of a path, as (mode & 0o7777, mtime in seconds, nanoseconds).
fn mode_and_mtime(p: &Path) -> (u32, i64, i64) {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(p).unwrap();
    (m.mode() & 0o7777, m.mtime(), m.mtime_nsec())
}

#[test]
fn mode_and_times_are_kept_both_ways() {
    use std::os::unix::fs::PermissionsExt;
    let d = tmpdir("meta");
    for (name, mode) in [("private.txt", 0o600), ("tool.sh", 0o755)] {
        let f = d.join(name);
        fs::write(&f, sample()).unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(mode)).unwrap();
        let old = std::time::UNIX_EPOCH + std::time::Duration::new(1_500_000_000, 123_456_789);
        fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let want = mode_and_mtime(&f);
        assert!(run(nnz().arg("--rm").arg(&f)).status.success());
        let z = d.join(format!("{name}.nnz"));
        assert_eq!(
            mode_and_mtime(&z),
            want,
            "{name}: the archive takes the input's mode and mtime"
        );
        assert!(run(nnz().args(["-d", "--rm"]).arg(&z)).status.success());
        assert_eq!(
            mode_and_mtime(&f),
            want,
            "{name}: decompression restores mode and mtime"
        );
        assert_eq!(fs::read(&f).unwrap(), sample());
    }
    // as root, the owner and group are kept too
    use std::os::unix::fs::MetadataExt;
    let f = d.join("owned.txt");
    fs::write(&f, sample()).unwrap();
    if fs::metadata(&f).unwrap().uid() == 0 {
        std::os::unix::fs::chown(&f, Some(4321), Some(4322)).unwrap();
        assert!(run(nnz().arg(&f)).status.success());
        let m = fs::metadata(d.join("owned.txt.nnz")).unwrap();
        assert_eq!((m.uid(), m.gid()), (4321, 4322));
    }
    no_temp_files(&d);
}

#[test]
fn a_file_that_changes_size_while_read_is_an_error() {
    let d = tmpdir("shrink");
    let f = d.join("big.txt");
    let mut data = Vec::new();
    while data.len() < 24 << 20 {
        data.extend(sample());
    }
    fs::write(&f, &data).unwrap();
    let child = nnz()
        .args(["--rm", "-T", "1", "--only", "lzma"])
        .arg(&f)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    fs::OpenOptions::new()
        .write(true)
        .open(&f)
        .unwrap()
        .set_len(1000)
        .unwrap();
    let o = child.wait_with_output().unwrap();
    // read before the cut, the whole file may have been coded already; else a clean error
    if !o.status.success() {
        assert_clean_failure(&o, "changed size");
        assert!(f.exists(), "--rm removed a file that changed");
        assert!(!d.join("big.txt.nnz").exists());
    }
    no_temp_files(&d);
}

#[test]
fn output_replaces_a_link_at_the_target_not_what_it_points_to() {
    let d = tmpdir("link");
    let f = d.join("a.txt");
    fs::write(&f, sample()).unwrap();
    let victim = d.join("victim");
    fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, d.join("a.txt.nnz")).unwrap();
    // without -f the link is an existing target
    assert_clean_failure(&run(nnz().arg(&f)), "already exists");
    assert!(run(nnz().arg("-f").arg(&f)).status.success());
    assert_eq!(fs::read(&victim).unwrap(), b"precious", "nnz wrote through a symlink");
    assert!(!fs::symlink_metadata(d.join("a.txt.nnz"))
        .unwrap()
        .file_type()
        .is_symlink());
    // -f onto a directory: an error, and no temporary file left in the directory's parent
    fs::remove_file(d.join("a.txt.nnz")).unwrap();
    fs::create_dir(d.join("a.txt.nnz")).unwrap();
    assert_clean_failure(&run(nnz().arg("-f").arg(&f)), "directory");
    no_temp_files(&d);
}

#[test]
fn termination_signals_leave_no_output() {
    let d = tmpdir("signals");
    let f = d.join("big.txt");
    let mut data = Vec::new();
    while data.len() < 3_000_000 {
        data.extend(sample());
    }
    fs::write(&f, &data).unwrap();
    for sig in ["TERM", "HUP", "INT"] {
        let mut child = nnz().arg(&f).stderr(Stdio::piped()).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(400));
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(child.id().to_string())
            .status();
        let st = child.wait().unwrap();
        assert!(!st.success(), "SIG{sig}");
        assert!(!d.join("big.txt.nnz").exists(), "SIG{sig}: output left behind");
        no_temp_files(&d);
    }
}

#[test]
fn file_names_need_not_be_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let d = tmpdir("utf8");
    let f = d.join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt"));
    fs::write(&f, sample()).unwrap();
    let o = run(nnz().arg("--rm").arg(&f));
    assert!(o.status.success(), "{}", stderr(&o));
    let z = d.join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt.nnz"));
    assert!(z.exists() && !f.exists());
    let o = run(nnz().arg("-d").arg(&z));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fs::read(&f).unwrap(), sample());
}

#[test]
fn non_regular_files_are_skipped_unless_streamed() {
    let d = tmpdir("fifo");
    let p = d.join("pipe");
    assert!(Command::new("mkfifo").arg(&p).status().unwrap().success());
    assert_clean_failure(&run(nnz().arg(&p)), "not a regular file");
    assert!(!d.join("pipe.nnz").exists());
    assert_clean_failure(&run_stdin(nnz().arg("/dev/stdin"), b"x"), "not a regular file");
    // with -c a device is read as a stream
    let o = run(nnz().args(["-c", "/dev/null"]));
    assert!(o.status.success(), "{}", stderr(&o));
    // a model "file" that never ends is refused, not read until memory runs out
    let o = run(Command::new(env!("CARGO_BIN_EXE_nnz")).args(["--model", "/dev/zero", "-c", "/dev/null"]));
    assert_clean_failure(&o, "larger than");
}

#[test]
fn command_words_yield_to_files_of_that_name() {
    let d = tmpdir("words");
    fs::write(d.join("c"), sample()).unwrap();
    fs::create_dir(d.join("d")).unwrap();
    // `nnz c` alone, with a file named c here, compresses that file
    let o = run(nnz().arg("c").current_dir(&*d));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(d.join("c.nnz").exists());
    // `nnz d` with a directory d: the directory, not standard input
    assert_clean_failure(&run(nnz().arg("d").current_dir(&*d)), "directory");
    // with an operand after it, c is the command word
    let o = run(nnz().args(["d", "c.nnz", "-f"]).current_dir(&*d));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fs::read(d.join("c")).unwrap(), sample());
}

#[test]
fn a_terminal_on_stdin_is_not_read_as_an_archive() {
    // `script` gives nnz a terminal on standard input
    if Command::new("script").arg("--version").output().is_err() {
        return;
    }
    let cmd = format!(
        "{} --model {} -d",
        env!("CARGO_BIN_EXE_nnz"),
        common::tiny_model_path().display()
    );
    let o = Command::new("timeout")
        .args(["10", "script", "-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("terminal"), "{text}");
    assert_eq!(o.status.code(), Some(1), "{text}");
}

#[test]
fn a_closed_pipe_ends_decompression_quietly() {
    let d = tmpdir("pipe");
    let f = d.join("zeros");
    fs::write(&f, vec![0u8; 8 << 20]).unwrap();
    assert!(run(nnz().args(["--only", "lzma"]).arg(&f)).status.success());
    let sh = format!(
        "{} --model {} -dc {} | head -c 10 >/dev/null; echo ${{PIPESTATUS[0]}}",
        env!("CARGO_BIN_EXE_nnz"),
        common::tiny_model_path().display(),
        d.join("zeros.nnz").display()
    );
    let o = Command::new("bash").arg("-c").arg(&sh).output().unwrap();
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "141");
}

#[test]
fn trailing_data_and_memory_limits_fail_clearly() {
    let d = tmpdir("trailing");
    let f = d.join("a.txt");
    fs::write(&f, sample()).unwrap();
    assert!(run(nnz().arg(&f)).status.success());
    let mut bad = fs::read(d.join("a.txt.nnz")).unwrap();
    bad.extend_from_slice(b"garbage");
    fs::write(d.join("b.txt.nnz"), &bad).unwrap();
    assert_clean_failure(&run(nnz().arg("-d").arg(d.join("b.txt.nnz"))), "after the end");
    assert!(!d.join("b.txt").exists());
    assert_clean_failure(&run(nnz().arg("-l").arg(d.join("b.txt.nnz"))), "after the end");
    // concatenated archives decode to the concatenation, and -l lists each
    let good = fs::read(d.join("a.txt.nnz")).unwrap();
    fs::write(d.join("two.nnz"), [good.clone(), good].concat()).unwrap();
    let o = run(nnz().args(["-dc"]).arg(d.join("two.nnz")));
    assert_eq!(o.stdout, [sample(), sample()].concat());
    let l = run(nnz().arg("-l").arg(d.join("two.nnz")));
    let listing = String::from_utf8_lossy(&l.stdout).into_owned();
    // the header, one row per stream, the totals
    assert_eq!(listing.lines().count(), 4, "{listing}");
    assert!(listing.lines().last().unwrap().contains("(2 streams)"), "{listing}");
    // -lv: each stream's format and chunk size, one line per frame
    let l = run(nnz().arg("-lv").arg(d.join("two.nnz")));
    let listing = String::from_utf8_lossy(&l.stdout).into_owned();
    let format = format!("format {}, chunks of", nnz::format::VERSION);
    assert_eq!(listing.matches(&format).count(), 2, "{listing}");
    assert_eq!(
        listing.lines().filter(|l| l.trim_start().starts_with("end ")).count(),
        2,
        "{listing}"
    );
    // a memory limit below what one chunk needs
    assert_clean_failure(&run(nnz().args(["-c", "-M", "1M"]).arg(&f)), "raise -M");
    assert_clean_failure(
        &run(nnz().args(["-dc", "-M", "1M"]).arg(d.join("a.txt.nnz"))),
        "raise -M",
    );
    // and -M does not change the archive
    let a = run(nnz().args(["-c", "-M", "128M", "-T", "2"]).arg(&f));
    let b = run(nnz().args(["-c", "-M", "0"]).arg(&f));
    assert!(a.status.success() && a.stdout == b.stdout);
}

#[test]
fn compressed_frames_reach_a_pipe_before_the_input_ends() {
    use std::io::{Read, Write};
    let mut child = nnz()
        .args(["-c", "--chunk-kib", "4", "-T", "2", "--only", "lzma"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut data = Vec::new();
    while data.len() < 64 << 10 {
        data.extend(sample());
    }
    stdin.write_all(&data).unwrap();
    stdin.flush().unwrap();
    // stdin stays open: frames of the chunks read so far must arrive anyway
    let mut stdout = child.stdout.take().unwrap();
    let mut got = vec![0u8; 64];
    stdout.read_exact(&mut got).unwrap();
    drop(stdin);
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn level_flags_work_the_gzip_way_and_wrong_levels_fail_on_one_line() {
    let text = sample();
    let packed = |args: &[&str]| {
        let o = run_stdin(nnz().args(args).args(["--chunk-kib", "4"]), &text);
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        o.stdout
    };
    let l1 = packed(&["-1c"]);
    assert_eq!(l1, packed(&["--fast", "-c"]));
    assert_eq!(l1, packed(&["-c", "--level", "1"]));
    assert_eq!(packed(&["-c9"]), packed(&["--best", "-c"]));
    // the last level given wins, as in gzip
    assert_eq!(packed(&["-9", "-c", "-1"]), l1);
    // no flag is level 8; -T's value is not a level
    assert_eq!(packed(&["-c"]), packed(&["-8c", "-T1"]));
    assert_eq!(packed(&["-T1", "-c"]), packed(&["-c"]));
    assert_eq!(packed(&["-cT1"]), packed(&["-c"]));
    assert_ne!(l1, packed(&["-c"]));
    for archive in [&l1, &packed(&["-5c"])] {
        let o = run_stdin(nnz().arg("-dc"), archive);
        assert!(o.status.success());
        assert_eq!(o.stdout, text, "decompression needs no level");
    }
    for bad in [&["-0"][..], &["-19"], &["--ultra"], &["--level", "10"]] {
        let o = run_stdin(nnz().args(bad).arg("-c"), &text);
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
        assert!(o.stdout.is_empty());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{bad:?}: {err}");
        assert!(err.contains("-1 (fastest) to -9 (best)"), "{bad:?}: {err}");
    }
}

#[test]
fn recursive_suffix_version_man_and_completions() {
    let d = tmpdir("recursive");
    let sub = d.join("sub");
    fs::create_dir_all(&sub).unwrap();
    fs::write(d.join("a.txt"), sample()).unwrap();
    fs::write(sub.join("b.txt"), b"second file, second file, second file").unwrap();
    // -r compresses every file under the folder, with -S's suffix
    assert!(run(nnz().args(["-r", "-1", "-S", ".z"]).arg(&*d)).status.success());
    assert!(d.join("a.txt.z").exists() && sub.join("b.txt.z").exists());
    assert!(!d.join("a.txt.nnz").exists());
    // a second run skips what already has the suffix (and refuses to overwrite without -f)
    let again = run(nnz().args(["-r", "-S", ".z"]).arg(&*d));
    assert!(!again.status.success());
    assert!(!d.join("a.txt.z.z").exists(), "a compressed file was compressed again");
    // -r -d takes only files with the suffix
    fs::remove_file(d.join("a.txt")).unwrap();
    fs::remove_file(sub.join("b.txt")).unwrap();
    let o = run(nnz().args(["-r", "-d", "-S", ".z"]).arg(&*d));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fs::read(d.join("a.txt")).unwrap(), sample());
    assert_eq!(
        fs::read(sub.join("b.txt")).unwrap(),
        b"second file, second file, second file"
    );
    // without -S the .z files are not archives by name
    let o = run(nnz().arg("-d").arg(d.join("a.txt.z")));
    assert!(!o.status.success() && stderr(&o).contains("expected .nnz"));

    let o = run(nnz().arg("--version"));
    let v = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && v.contains("built-in model ") && v.contains("GPU kernels"),
        "{v}"
    );
    let o = run(nnz().arg("--man"));
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains(".TH nnz 1"));
    let o = run(nnz().args(["--completions", "bash"]));
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("--level"));
}

#[test]
fn quiet_twice_silences_errors_and_progress_can_be_forced() {
    let d = tmpdir("quiet");
    let missing = d.join("missing.nnz");
    let o = run(nnz().arg("-d").arg(&missing));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no such file"));
    let o = run(nnz().args(["-qq", "-d"]).arg(&missing));
    assert_eq!(o.status.code(), Some(1), "the status still tells");
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
    // no terminal here: no bar unless asked for; --no-progress wins when given last
    let quiet = run_stdin(nnz().arg("-c"), &sample());
    assert!(quiet.stderr.is_empty());
    let o = run_stdin(nnz().args(["-c", "--progress", "--no-progress"]), &sample());
    assert!(o.stderr.is_empty());
    assert_eq!(o.stdout, quiet.stdout);
    // -vv says what the level tries
    let o = run_stdin(nnz().args(["-vv", "-4", "-c"]), &sample());
    assert!(
        stderr(&o).contains("level 4: tries the byte mixer and storing"),
        "{}",
        stderr(&o)
    );
}
