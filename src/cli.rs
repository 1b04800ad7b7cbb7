//! The `nnz` command line: gzip/zstd-style flags, `nnz c FILE` / `nnz d FILE.nnz` shorthands,
//! stdin → stdout when no file is given. Output goes to a temporary file (created exclusively, with
//! a random name, beside the target) that is renamed into place only after success, with the
//! input's mode and times (and owner, as root); errors print one line and exit 1.

use crate::backend::cpu::CpuBackend;
use crate::backend::cuda::{CudaBackend, CudaOptions};
use crate::backend::Backend;
use crate::codec::{self, Cancel, Input, Options, Stats};
use crate::error::{Error, Result};
use crate::format::{Frame, Header};
use crate::model::Model;
use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Device {
    Auto,
    Cpu,
    Cuda,
}

/// `--kernels`
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kernels {
    Auto,
    Nvrtc,
}

/// `--only`, `--without`
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Only {
    Model,
    Cm,
    Bwt,
    Lzma,
}

impl Only {
    fn method(self) -> codec::Method {
        match self {
            Only::Model => codec::Method::Model,
            Only::Cm => codec::Method::Cm,
            Only::Bwt => codec::Method::Bwt,
            Only::Lzma => codec::Method::Lzma,
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "nnz",
    version,
    about = "Lossless compression with a small neural network as the predictor",
    after_help = "Shorthands: `nnz c FILE` compresses to FILE.nnz, `nnz d FILE.nnz` restores FILE.\n\
                  With no FILE, or when FILE is -, nnz reads standard input and writes standard output\n\
                  (so `tar -I nnz -cf dir.tar.nnz dir` works)."
)]
pub struct Args {
    /// Decompress
    #[arg(short = 'd', long = "decompress")]
    pub decompress: bool,
    /// Write to standard output, keep input files
    #[arg(short = 'c', long = "stdout")]
    pub stdout: bool,
    /// Keep input files (the default)
    #[arg(short = 'k', long = "keep")]
    pub keep: bool,
    /// Remove input files after success
    #[arg(long = "rm")]
    pub rm: bool,
    /// Overwrite existing output files; allow compressed data on a terminal
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Write the result to this file (one input only)
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Test the integrity of compressed files
    #[arg(short = 't', long = "test")]
    pub test: bool,
    /// List the contents of compressed files
    #[arg(short = 'l', long = "list")]
    pub list: bool,
    /// Print only errors (twice: not even those; the exit status tells)
    #[arg(short = 'q', long = "quiet", action = clap::ArgAction::Count)]
    pub quiet: u8,
    /// Print the device, the model and per-file statistics (twice: also what the level tries and
    /// the memory limit)
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Show a progress bar even when standard error is not a terminal
    #[arg(long = "progress", overrides_with = "no_progress")]
    pub progress: bool,
    /// Never show a progress bar
    #[arg(long = "no-progress", overrides_with = "progress")]
    pub no_progress: bool,
    /// Compression level, also given as -1 ... -9: 1 fast BWT, 2-3 BWT (3 with LZMA), 4-6 the byte
    /// mixer, 7-9 the transformer with the mixers; default 8. Decompression needs no level
    #[arg(long = "level", value_name = "N", value_parser = parse_level, overrides_with_all = ["level", "fast", "best"])]
    pub level: Option<u8>,
    /// Fastest compression (-1)
    #[arg(long = "fast", overrides_with_all = ["level", "fast", "best"])]
    pub fast: bool,
    /// Best compression (-9)
    #[arg(long = "best", overrides_with_all = ["level", "fast", "best"])]
    pub best: bool,
    /// not a level of nnz: refused with the range
    #[arg(long = "ultra", hide = true)]
    pub ultra: bool,
    /// Code tokens straight from the transformer, without the context mixers: the mode a GPU
    /// runs at speed (on a CPU it is slower, and archives are larger). Decompression needs no flag
    #[arg(long = "direct")]
    pub direct: bool,
    /// Threads (0 = all cores)
    #[arg(short = 'T', long = "threads", default_value_t = 0, value_name = "N")]
    pub threads: usize,
    /// Where the model runs
    #[arg(long, value_enum, default_value_t = Device::Auto)]
    pub device: Device,
    /// Most GPU memory to use, e.g. 8G or 512M (bigger inputs stream through in batches)
    #[arg(long = "gpu-mem", value_name = "SIZE", default_value = "8G", value_parser = parse_size)]
    pub gpu_mem: u64,
    /// Where the GPU kernels come from: the PTX built into this binary when there is some, else
    /// NVRTC (auto); or always NVRTC, compiled for this GPU
    #[arg(long, value_enum, default_value_t = Kernels::Auto, value_name = "FROM")]
    pub kernels: Kernels,
    /// Directory that keeps NVRTC's compiled kernels between runs (default: $XDG_CACHE_HOME/nnz/ptx
    /// or ~/.cache/nnz/ptx)
    #[arg(long = "ptx-cache", value_name = "DIR")]
    pub ptx_cache: Option<PathBuf>,
    /// Replay each GPU batch as a recorded CUDA graph (experimental: not yet measured on a GPU)
    #[arg(long = "cuda-graphs")]
    pub cuda_graphs: bool,
    /// For experiments: code every chunk with this method only (or store it), to measure one
    /// method alone. Archives stay valid
    #[arg(long, value_enum, value_name = "METHOD")]
    pub only: Option<Only>,
    /// For experiments: never try this method. `-8 --without model` is the default level
    /// without the network (the bench's "network share"). Archives stay valid
    #[arg(long, value_enum, value_name = "METHOD")]
    pub without: Option<Only>,
    /// Use this model file instead of the built-in one (decompression needs the model the archive
    /// names: this file, or one of the models built into nnz)
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Most memory for the chunks being coded, e.g. 2G or 512M (both directions; 0 = no limit).
    /// Default: a quarter of the machine's memory. It limits how many chunks are coded at once,
    /// never how they are coded
    #[arg(short = 'M', long = "memory", value_name = "LIMIT", value_parser = parse_size)]
    pub memory: Option<u64>,
    /// Chunk size in KiB for compression (each chunk is coded independently)
    #[arg(long, value_name = "KIB", default_value_t = codec::DEFAULT_CHUNK / 1024, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub chunk_kib: u32,
    /// Suffix of compressed files (instead of .nnz)
    #[arg(short = 'S', long = "suffix", value_name = "SUF", default_value = ".nnz", value_parser = parse_suffix)]
    pub suffix: String,
    /// Operate on the files in directories, recursively (compressing skips files that already
    /// have the suffix; decompressing takes only those)
    #[arg(short = 'r', long = "recursive")]
    pub recursive: bool,
    /// Print the manual page (roff) and exit: `nnz --man > /usr/local/share/man/man1/nnz.1`
    #[arg(long = "man", hide_short_help = true)]
    pub man: bool,
    /// Print a completion script for SHELL and exit (bash, zsh, fish, elvish, powershell)
    #[arg(long = "completions", value_name = "SHELL", hide_short_help = true)]
    pub completions: Option<clap_complete::Shell>,
    /// Files to process ('-' is standard input)
    pub files: Vec<PathBuf>,
}

/// The token every call of this process holds; the signal handler cancels it.
static CANCEL: std::sync::LazyLock<Cancel> = std::sync::LazyLock::new(Cancel::new);

/// Temporary output files that must go if we are interrupted.
static TEMP_FILES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// On SIGINT, SIGTERM or SIGHUP: remove the temporary outputs, say so, exit 130.
pub fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        CANCEL.cancel();
        if let Ok(list) = TEMP_FILES.lock() {
            for p in list.iter() {
                let _ = fs::remove_file(p);
            }
        }
        eprintln!("nnz: interrupted");
        std::process::exit(130);
    });
}

/// Parse `nnz c ...` / `nnz d ...` shorthands (the first operand, after any options) into flags,
/// then the gzip-style arguments. The first operand is a command word only when more operands
/// follow or no file of that name exists, so `nnz c` compresses a file named `c` if there is one
/// (a file named `c` can always be given as `./c`).
pub fn parse_args(mut argv: Vec<OsString>) -> Args {
    let takes_value = [
        "-o",
        "--output",
        "-T",
        "--threads",
        "--device",
        "--gpu-mem",
        "--model",
        "--chunk-kib",
        "-M",
        "--memory",
        "--kernels",
        "--ptx-cache",
        "--only",
        "--without",
        "-S",
        "--suffix",
        "--completions",
        "--level",
    ];
    let mut i = 1;
    while i < argv.len() {
        let a = argv[i].to_string_lossy().into_owned();
        if a == "--" {
            break;
        }
        if a.starts_with('-') && a != "-" {
            i += if takes_value.contains(&a.as_str()) { 2 } else { 1 };
            continue;
        }
        let more_operands = argv[i + 1..]
            .iter()
            .any(|x| !x.to_string_lossy().starts_with('-') || x == "-");
        let is_word = matches!(a.as_str(), "c" | "compress" | "d" | "decompress" | "x");
        if is_word && (more_operands || fs::symlink_metadata(&a).is_err()) {
            if matches!(a.as_str(), "c" | "compress") {
                argv.remove(i);
            } else {
                argv[i] = "-d".into();
            }
        }
        break;
    }
    let argv = expand_level_flags(argv, &takes_value);
    let mut cmd = Args::command();
    if argv.iter().any(|a| a == "--version" || a == "-V") {
        cmd = cmd.version(version_text());
    }
    match cmd.try_get_matches_from(argv).and_then(|m| Args::from_arg_matches(&m)) {
        Ok(a) if a.ultra => usage_error(&format!("--ultra: there is no such level; {LEVELS}")),
        Ok(a) => a,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("").trim_start_matches("error: ");
            usage_error(first)
        }
    }
}

/// `--version`: the program, its built-in model and where GPU kernels would come from.
fn version_text() -> &'static str {
    let mut model = Model::default_model().map_or_else(|e| format!("unusable ({e})"), |m| m.id_hex());
    let former = crate::model::BUILT_IN.len() - 1;
    if former > 0 {
        let s = if former == 1 { "" } else { "s" };
        model += &format!(" (and {former} former default{s}, for their archives)");
    }
    let ptx = if crate::backend::kernels::EMBEDDED.is_empty() {
        "GPU kernels: compiled by NVRTC at start-up (no PTX built in)".to_string()
    } else {
        format!(
            "GPU kernels: PTX built in for {}",
            crate::backend::kernels::EMBEDDED_ARCH
        )
    };
    let text = format!(
        "{}\nbuilt-in model {model}\narchive format {}\n{ptx}",
        env!("CARGO_PKG_VERSION"),
        crate::format::VERSION
    );
    Box::leak(text.into_boxed_str())
}

/// The command line's definition, for the manual page and completions.
fn print_man_or_completions(args: &Args) -> Option<i32> {
    let mut cmd = Args::command();
    if args.man {
        let man = clap_mangen::Man::new(cmd);
        let mut out = Vec::new();
        return Some(match man.render(&mut out).and_then(|_| io::stdout().write_all(&out)) {
            Ok(()) => 0,
            Err(e) => {
                say_error(args, e.to_string());
                1
            }
        });
    }
    let shell = args.completions?;
    clap_complete::generate(shell, &mut cmd, "nnz", &mut io::stdout());
    Some(0)
}

/// `-S`: a suffix is a non-empty name ending without a path separator.
fn parse_suffix(s: &str) -> std::result::Result<String, String> {
    if s.is_empty() || s.contains('/') {
        return Err(format!("{s:?} is not a suffix (it must be non-empty, without '/')"));
    }
    Ok(s.to_string())
}

/// What the flags ask of compression (without the progress bar).
fn compress_options(args: &Args) -> Options {
    Options {
        chunk_size: args.chunk_kib * 1024,
        level: if args.fast {
            codec::level::MIN_LEVEL
        } else if args.best {
            codec::level::MAX_LEVEL
        } else {
            args.level.unwrap_or(codec::level::DEFAULT_LEVEL)
        },
        direct: args.direct,
        only: args.only.map(Only::method),
        without: args.without.map(Only::method),
        memory_limit: memory_limit(args),
        cancel: CANCEL.clone(),
        progress: None,
    }
}

/// An error message on stderr, unless -qq.
fn say_error(args: &Args, msg: String) {
    if args.quiet < 2 {
        eprintln!("nnz: {msg}");
    }
}

/// What the levels are, for errors.
const LEVELS: &str = "levels go from -1 (fastest) to -9 (best)";

/// A usage error on one line, and exit status 2 (as clap's own).
fn usage_error(msg: &str) -> ! {
    eprintln!("nnz: {msg} (nnz --help lists the options)");
    std::process::exit(2)
}

/// `--level` values.
fn parse_level(s: &str) -> std::result::Result<u8, String> {
    match s.parse::<u8>() {
        Ok(n) if (codec::level::MIN_LEVEL..=codec::level::MAX_LEVEL).contains(&n) => Ok(n),
        _ => Err(format!("no level -{s}: {LEVELS}")),
    }
}

/// `--level=N` for the digits of `-N`, or a usage error naming the range.
fn level_flag(digits: &str) -> OsString {
    if let Err(e) = parse_level(digits) {
        usage_error(&e);
    }
    format!("--level={digits}").into()
}

/// gzip's level flags: digits in a cluster of short flags (`-9`, `-9c`, `-c9`, `-19`) become
/// `--level=N`, the other letters stay a cluster. Values of options (`-T 4`, `-T4`, `-o -9`) and
/// everything after `--` are left alone.
fn expand_level_flags(argv: Vec<OsString>, takes_value: &[&str]) -> Vec<OsString> {
    let mut out = Vec::with_capacity(argv.len());
    let mut literal = false;
    let mut value_next = false;
    for (i, a) in argv.into_iter().enumerate() {
        let s = match a.to_str() {
            Some(s) if i > 0 && !literal && !value_next => s.to_owned(),
            _ => {
                value_next = false;
                out.push(a);
                continue;
            }
        };
        if s == "--" {
            literal = true;
        }
        if s.starts_with("--") || !s.starts_with('-') || s == "-" {
            value_next = takes_value.contains(&s.as_str());
            out.push(a);
            continue;
        }
        let (mut rest, mut digits) = (String::new(), String::new());
        for (k, ch) in s.char_indices().skip(1) {
            if ch.is_ascii_digit() {
                digits.push(ch);
                continue;
            }
            if !digits.is_empty() {
                out.push(level_flag(&std::mem::take(&mut digits)));
            }
            rest.push(ch);
            if takes_value.contains(&format!("-{ch}").as_str()) {
                // the rest of the cluster is this option's value, or the next argument is
                rest.push_str(&s[k + ch.len_utf8()..]);
                value_next = k + ch.len_utf8() == s.len();
                break;
            }
        }
        if !digits.is_empty() {
            out.push(level_flag(&digits));
        }
        if !rest.is_empty() {
            out.push(format!("-{rest}").into());
        }
    }
    out
}

enum Mode {
    Compress,
    Decompress,
    Test,
    List,
}

pub fn run(args: Args) -> i32 {
    if let Some(status) = print_man_or_completions(&args) {
        return status;
    }
    if args.threads > 0 {
        let _ = rayon::ThreadPoolBuilder::new().num_threads(args.threads).build_global();
    }
    let mode = if args.list {
        Mode::List
    } else if args.test {
        Mode::Test
    } else if args.decompress {
        Mode::Decompress
    } else {
        Mode::Compress
    };
    let mut files: Vec<PathBuf> = if args.files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        args.files.clone()
    };
    let mut status = 0;
    if args.recursive {
        let mut found = Vec::new();
        for f in &files {
            if let Err(e) = walk(f, &args, matches!(mode, Mode::Compress), &mut found) {
                say_error(&args, format!("{}: {}", display(f), io_msg(&e)));
                status = 1;
            }
        }
        files = found;
    }
    if args.output.is_some() && files.len() > 1 {
        say_error(&args, "-o takes one input file".into());
        return 1;
    }
    let reads_archive = !matches!(mode, Mode::Compress);
    if reads_archive && !args.force && files.iter().any(|f| is_stdin(f)) && io::stdin().is_terminal() {
        say_error(
            &args,
            "refusing to read compressed data from a terminal (redirect a file into nnz, or name it)".into(),
        );
        return 1;
    }
    if matches!(mode, Mode::List) {
        if writeln!(io::stdout(), "{LIST_HEADER}").is_err() {
            return BROKEN_PIPE;
        }
        let mut total = Stats::default();
        let mut rows = 0;
        for f in &files {
            match list_one(f, args.verbose > 0, &mut total) {
                Ok(n) => rows += n,
                Err(e) if is_broken_pipe(&e) => return BROKEN_PIPE,
                Err(e) => {
                    say_error(&args, format!("{}: {e}", display(f)));
                    status = 1;
                }
            }
        }
        if rows > 1 && writeln!(io::stdout(), "{}", list_row(&total, "", &format!("({rows} streams)"))).is_err() {
            return BROKEN_PIPE;
        }
        return status;
    }
    let backend = match make_backend(&args) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("nnz: {e}");
            return 1;
        }
    };
    if args.verbose > 0 {
        eprintln!(
            "nnz: model {} on {}",
            crate::model::hex(&backend.model_info().id),
            backend.name()
        );
    }
    if args.verbose > 1 && matches!(mode, Mode::Compress) {
        let opts = compress_options(&args);
        eprintln!(
            "nnz: level {}: {}; chunks of {} KiB; memory limit {}",
            opts.level,
            opts.plan().describe(),
            opts.chunk_size / 1024,
            opts.memory_limit.map_or("none".into(), |m| format!("{} MiB", m >> 20))
        );
    }
    for f in &files {
        let r = match mode {
            Mode::Compress => compress_one(&args, backend.as_ref(), f),
            Mode::Decompress => decompress_one(&args, backend.as_ref(), f, false),
            Mode::Test => decompress_one(&args, backend.as_ref(), f, true),
            Mode::List => unreachable!(),
        };
        if let Err(e) = r {
            if is_broken_pipe(&e) {
                // the reader went away (`nnz -dc f | head`): stop quietly, as xz and zstd do
                return BROKEN_PIPE;
            }
            say_error(&args, format!("{}: {e}", display(f)));
            status = 1;
        }
    }
    status
}

/// `-r`: `p` itself if it is not a directory, else the files under it in name order; compressing
/// skips files that already have the suffix, decompressing and testing take only those. Symbolic
/// links inside a directory are not followed (as gzip -r).
fn walk(p: &Path, args: &Args, compress: bool, out: &mut Vec<PathBuf>) -> io::Result<()> {
    if is_stdin(p) || !fs::metadata(p)?.is_dir() {
        out.push(p.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<_> = fs::read_dir(p)?.collect::<io::Result<Vec<_>>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let kind = e.file_type()?;
        if kind.is_dir() {
            walk(&path, args, compress, out)?;
        } else if kind.is_file() {
            let has_suffix = path.as_os_str().as_encoded_bytes().ends_with(args.suffix.as_bytes());
            if has_suffix != compress {
                out.push(path);
            }
        }
    }
    Ok(())
}

/// The status `run` returns when the reader of standard output went away (`nnz -dc f | head`); the
/// program then ends by SIGPIPE, quietly, as xz and zstd do.
pub const BROKEN_PIPE: i32 = 141;

fn is_broken_pipe(e: &Error) -> bool {
    matches!(e, Error::Io(io) if io.kind() == io::ErrorKind::BrokenPipe)
}

/// The largest model file `--model` reads (the shipped models are a few MiB).
const MAX_MODEL_FILE: u64 = 256 << 20;

/// `-M`: 0 is no limit; by default a quarter of the machine's memory, as xz does for its threads.
fn memory_limit(args: &Args) -> Option<u64> {
    match args.memory {
        Some(0) => None,
        Some(m) => Some(m),
        None => Some(physical_memory().map_or(4 << 30, |m| (m / 4).max(512 << 20))),
    }
}

/// Total memory of the machine, from /proc/meminfo where there is one.
fn physical_memory() -> Option<u64> {
    let info = fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn load_model(args: &Args) -> Result<Model> {
    match &args.model {
        Some(p) => {
            let cannot = |e: io::Error| Error::Usage(format!("cannot read model {}: {}", p.display(), io_msg(&e)));
            let mut bytes = Vec::new();
            File::open(p)
                .map_err(cannot)?
                .take(MAX_MODEL_FILE + 1)
                .read_to_end(&mut bytes)
                .map_err(cannot)?;
            if bytes.len() as u64 > MAX_MODEL_FILE {
                return Err(Error::BadModel(format!(
                    "{} is larger than {} MiB",
                    p.display(),
                    MAX_MODEL_FILE >> 20
                )));
            }
            Model::from_bytes(&bytes)
        }
        None => Model::default_model(),
    }
}

/// A size in bytes with an optional K, M, G or T suffix (powers of 1024; a trailing "B" or "iB"
/// is allowed): `8G`, `512MiB`, `1000000`.
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let t = t.strip_suffix("iB").or_else(|| t.strip_suffix('B')).unwrap_or(t);
    let (num, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("unknown size suffix in {s:?} (use K, M, G or T)")),
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 8G, 512M)"))?;
    n.checked_mul(1 << shift).ok_or_else(|| format!("{s:?} is too large"))
}

/// `--device cpu` is the CPU; `cuda` is the GPU or an error; `auto` tries the GPU when a CUDA
/// driver is installed and falls back to the CPU with one line on stderr if it does not work.
/// Machines without any CUDA driver use the CPU silently (nothing to fall back from).
fn make_backend(args: &Args) -> Result<Box<dyn Backend>> {
    let cpu_only =
        args.device == Device::Cpu || (args.device == Device::Auto && !crate::backend::cuda::driver_present());
    if cpu_only && args.model.is_none() {
        // loaded when a chunk first needs the transformer: fast levels never wait for it
        return Ok(Box::new(CpuBackend::built_in()?));
    }
    let model = load_model(args)?;
    let cuda = CudaOptions {
        ordinal: 0,
        mem_limit: args.gpu_mem,
        graphs: args.cuda_graphs,
        force_nvrtc: args.kernels == Kernels::Nvrtc,
        ptx_cache: args
            .ptx_cache
            .clone()
            .or_else(crate::backend::kernels::default_cache_dir),
    };
    match args.device {
        Device::Cpu => Ok(Box::new(CpuBackend::new(model))),
        Device::Cuda => match CudaBackend::open(model, &cuda) {
            Ok(b) => Ok(Box::new(b)),
            Err(e) => Err(Error::Usage(format!("--device cuda: {e}"))),
        },
        Device::Auto => {
            if !crate::backend::cuda::driver_present() {
                return Ok(Box::new(CpuBackend::new(model)));
            }
            match CudaBackend::open(model, &cuda) {
                Ok(b) => Ok(Box::new(b)),
                Err(e) => {
                    if args.quiet == 0 {
                        eprintln!("nnz: GPU not usable ({e}); using the CPU");
                    }
                    Ok(Box::new(CpuBackend::new(load_model(args)?)))
                }
            }
        }
    }
}

fn display(p: &Path) -> String {
    if p.as_os_str() == "-" {
        "(stdin)".into()
    } else {
        p.display().to_string()
    }
}

fn is_stdin(p: &Path) -> bool {
    p.as_os_str() == "-"
}

/// Where the result goes: standard output, or a file (written via a temporary).
enum Dest {
    Stdout,
    File(PathBuf),
}

fn dest_for(args: &Args, input: &Path, compress: bool) -> Result<Dest> {
    if let Some(o) = &args.output {
        return Ok(if o.as_os_str() == "-" {
            Dest::Stdout
        } else {
            Dest::File(o.clone())
        });
    }
    if args.stdout || is_stdin(input) {
        return Ok(Dest::Stdout);
    }
    let name = input.as_os_str().as_encoded_bytes();
    let suffix = args.suffix.as_str();
    if compress {
        if name.ends_with(suffix.as_bytes()) {
            return Err(Error::Usage(format!("already has the {suffix} suffix -- ignored")));
        }
        let mut s = input.as_os_str().to_owned();
        s.push(suffix);
        Ok(Dest::File(PathBuf::from(s)))
    } else {
        match name.strip_suffix(suffix.as_bytes()) {
            Some(stem) if !stem.is_empty() && !stem.ends_with(b"/") => {
                // SAFETY: `stem` is the input's own encoded bytes cut before an ASCII suffix
                Ok(Dest::File(PathBuf::from(unsafe {
                    OsStr::from_encoded_bytes_unchecked(stem)
                })))
            }
            _ => Err(Error::Usage(format!(
                "unknown suffix (expected {suffix}) -- ignored; use -o or -c"
            ))),
        }
    }
}

/// An opened input: the file (or standard input), its size and its metadata (files only).
struct Opened {
    file: Option<File>,
    size: u64,
    meta: Option<fs::Metadata>,
}

/// Open an input. Inputs are read, never memory-mapped: a file truncated while nnz reads it then
/// just ends early instead of killing the process. Anything but a regular file (a FIFO, a device)
/// is refused where the output name would be made from it; with -c or -o it is read as a stream.
fn open_input(p: &Path, names_output: bool) -> Result<Opened> {
    if is_stdin(p) {
        return Ok(Opened {
            file: None,
            size: 0,
            meta: None,
        });
    }
    let meta = fs::metadata(p).map_err(|e| Error::Usage(io_msg(&e)))?;
    if meta.is_dir() {
        return Err(Error::Usage("is a directory -- ignored".into()));
    }
    if !meta.is_file() && names_output {
        return Err(Error::Usage(
            "not a regular file -- ignored (use -c or -o to read it as a stream)".into(),
        ));
    }
    let file = File::open(p).map_err(|e| Error::Usage(io_msg(&e)))?;
    let size = if meta.is_file() { meta.len() } else { 0 };
    Ok(Opened {
        file: Some(file),
        size,
        meta: meta.is_file().then_some(meta),
    })
}

/// A reader over the opened file or standard input.
fn reader(file: Option<File>) -> Box<dyn Read> {
    match file {
        Some(f) => Box::new(BufReader::with_capacity(1 << 20, f)),
        None => Box::new(io::stdin().lock()),
    }
}

fn io_msg(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// A temporary file beside `target`, renamed onto it by `commit`; removed on drop otherwise. It is
/// created exclusively (O_EXCL, a random name, mode 0600), so nobody can plant a link at its name,
/// and without -f the rename refuses to replace a target that appeared in the meantime.
struct TempOut {
    file: Option<tempfile::NamedTempFile<BufWriter<File>>>,
    path: PathBuf,
    target: PathBuf,
    force: bool,
}

impl TempOut {
    fn create(target: &Path, force: bool) -> Result<TempOut> {
        if let Ok(m) = fs::symlink_metadata(target) {
            if m.is_dir() {
                return Err(Error::Usage(format!("{} is a directory", target.display())));
            }
            if !force {
                return Err(Error::Usage(format!(
                    "{} already exists; use -f to overwrite",
                    target.display()
                )));
            }
        }
        let dir = target
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut prefix = OsString::from(".");
        prefix.push(target.file_name().unwrap_or_default());
        prefix.push(".");
        let file = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(".nnztmp")
            .make_in(dir, |p| {
                fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(p)
                    .map(|f| BufWriter::with_capacity(1 << 20, f))
            })
            .map_err(|e| Error::Usage(format!("cannot create a file in {}: {}", dir.display(), io_msg(&e))))?;
        let path = file.path().to_path_buf();
        TEMP_FILES.lock().unwrap_or_else(|e| e.into_inner()).push(path.clone());
        Ok(TempOut {
            file: Some(file),
            path,
            target: target.to_path_buf(),
            force,
        })
    }

    fn writer(&mut self) -> &mut dyn Write {
        self.file.as_mut().unwrap().as_file_mut()
    }

    /// Flush, give the file the input's metadata, make it durable and rename it onto the target.
    fn commit(mut self, meta: Option<&fs::Metadata>) -> Result<()> {
        let mut tmp = self.file.take().unwrap();
        tmp.as_file_mut().flush()?;
        let f = tmp.as_file().get_ref();
        if let Some(m) = meta {
            copy_metadata(m, f)?;
        }
        f.sync_all()?;
        let r = if self.force {
            tmp.persist(&self.target).map(|_| ())
        } else {
            tmp.persist_noclobber(&self.target).map(|_| ())
        };
        TEMP_FILES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|p| p != &self.path);
        r.map_err(|e| {
            if e.error.kind() == io::ErrorKind::AlreadyExists {
                Error::Usage(format!("{} already exists; use -f to overwrite", self.target.display()))
            } else {
                Error::Usage(format!("cannot write {}: {}", self.target.display(), io_msg(&e.error)))
            }
        })
    }
}

impl Drop for TempOut {
    fn drop(&mut self) {
        if let Some(f) = self.file.take() {
            let _ = f.close();
            TEMP_FILES
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|p| p != &self.path);
        }
    }
}

/// Give the output the input's modification and access times and permissions; as root, also its
/// owner and group (gzip, xz and zstd do the same). A set-id bit is kept only with the owner.
fn copy_metadata(m: &fs::Metadata, f: &File) -> Result<()> {
    let mut times = fs::FileTimes::new();
    if let Ok(t) = m.modified() {
        times = times.set_modified(t);
    }
    if let Ok(t) = m.accessed() {
        times = times.set_accessed(t);
    }
    f.set_times(times)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let owner = std::os::unix::fs::fchown(f, Some(m.uid()), Some(m.gid())).is_ok();
        if !owner {
            let _ = std::os::unix::fs::fchown(f, None, Some(m.gid()));
        }
        let mode = m.mode() & if owner { 0o7777 } else { 0o777 };
        f.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    f.set_permissions(m.permissions())?;
    Ok(())
}

fn progress_bar(args: &Args, total: u64) -> Option<indicatif::ProgressBar> {
    let wanted = if args.no_progress {
        false
    } else {
        args.progress || (args.quiet == 0 && io::stderr().is_terminal())
    };
    if !wanted {
        return None;
    }
    let pb = if total > 0 {
        indicatif::ProgressBar::new(total)
    } else {
        indicatif::ProgressBar::new_spinner()
    };
    pb.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} {bytes}/{total_bytes} {bar:30} {bytes_per_sec} eta {eta}")
    {
        pb.set_style(style);
    }
    // the spinner and the speed move between reports too (a long sort, the last chunk's trials)
    pb.enable_steady_tick(std::time::Duration::from_millis(250));
    Some(pb)
}

fn compress_one(args: &Args, backend: &dyn Backend, input: &Path) -> Result<()> {
    let dest = dest_for(args, input, true)?;
    if matches!(dest, Dest::Stdout) && io::stdout().is_terminal() && !args.force {
        return Err(Error::Usage(
            "refusing to write compressed data to a terminal (use -f to force, or redirect)".into(),
        ));
    }
    let opened = open_input(input, args.output.is_none() && !args.stdout)?;
    let size = opened.size;
    let meta = opened.meta;
    let src = Input::Reader(reader(opened.file));
    let pb = progress_bar(args, size);
    let opts = Options {
        progress: pb
            .clone()
            .map(|pb| Box::new(move |n| pb.set_position(n)) as Box<dyn Fn(u64) + Sync>),
        ..compress_options(args)
    };
    let t0 = Instant::now();
    let stats = match dest {
        Dest::Stdout => {
            let stdout = io::stdout();
            let mut w = BufWriter::with_capacity(1 << 20, stdout.lock());
            codec::compress(backend, src, &mut w, &opts)?
        }
        Dest::File(ref target) => {
            let mut tmp = TempOut::create(target, args.force)?;
            let s = codec::compress(backend, src, tmp.writer(), &opts)?;
            check_size(meta.as_ref(), &s)?;
            tmp.commit(meta.as_ref())?;
            s
        }
    };
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    check_size(meta.as_ref(), &stats)?;
    report(args, input, &stats, t0, true);
    finish_input(args, input, &dest)
}

fn decompress_one(args: &Args, backend: &dyn Backend, input: &Path, test_only: bool) -> Result<()> {
    let dest = if test_only {
        Dest::Stdout
    } else {
        dest_for(args, input, false)?
    };
    let opened = open_input(input, !test_only && args.output.is_none() && !args.stdout)?;
    let size = opened.size;
    let meta = opened.meta;
    let mut src = reader(opened.file);
    let pb = progress_bar(args, size);
    let opts = Options {
        memory_limit: memory_limit(args),
        cancel: CANCEL.clone(),
        progress: pb
            .clone()
            .map(|pb| Box::new(move |n| pb.set_position(n)) as Box<dyn Fn(u64) + Sync>),
        ..Options::default()
    };
    let t0 = Instant::now();
    let stats = if test_only {
        codec::decompress(backend, &mut src, None, &opts)?
    } else {
        match dest {
            Dest::Stdout => {
                let stdout = io::stdout();
                let mut w = BufWriter::with_capacity(1 << 20, stdout.lock());
                codec::decompress(backend, &mut src, Some(&mut w), &opts)?
            }
            Dest::File(ref target) => {
                let mut tmp = TempOut::create(target, args.force)?;
                let s = codec::decompress(backend, &mut src, Some(tmp.writer()), &opts)?;
                tmp.commit(meta.as_ref())?;
                s
            }
        }
    };
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    if test_only {
        if args.verbose > 0 {
            eprintln!("{}: OK", display(input));
        }
        return Ok(());
    }
    report(args, input, &stats, t0, false);
    finish_input(args, input, &dest)
}

/// A file that grew or shrank while nnz read it (someone else wrote to it) is an error: the archive
/// would hold neither the old nor the new content for sure, and --rm must not remove the input.
fn check_size(meta: Option<&fs::Metadata>, s: &Stats) -> Result<()> {
    match meta {
        Some(m) if m.len() != s.raw_bytes => Err(Error::Usage(format!(
            "changed size while being compressed ({} bytes at the start, {} read); no output written",
            m.len(),
            s.raw_bytes
        ))),
        _ => Ok(()),
    }
}

fn finish_input(args: &Args, input: &Path, dest: &Dest) -> Result<()> {
    if args.rm && !args.stdout && !is_stdin(input) && matches!(dest, Dest::File(_)) {
        fs::remove_file(input).map_err(|e| Error::Usage(format!("cannot remove input: {}", io_msg(&e))))?;
    }
    Ok(())
}

fn report(args: &Args, input: &Path, s: &Stats, t0: Instant, compress: bool) {
    if args.verbose == 0 {
        return;
    }
    let secs = t0.elapsed().as_secs_f64().max(1e-9);
    let tokens = if s.tokens > 0 {
        format!(", {} tokens ({:.0}/s)", s.tokens, s.tokens as f64 / secs)
    } else {
        String::new()
    };
    let stopped = match s.model_trials_stopped {
        0 => String::new(),
        1 => "; the model's trial stopped behind the byte mixer on 1 chunk".into(),
        n => format!("; the model's trial stopped behind the byte mixer on {n} chunks"),
    };
    eprintln!(
        "{}: {} -> {} bytes ({:.2}%, {:.3} bits/byte); frames: {}{tokens}{stopped}; {} at {:.3} MB/s in {:.2} s",
        display(input),
        if compress { s.raw_bytes } else { s.packed_bytes },
        if compress { s.packed_bytes } else { s.raw_bytes },
        s.percent(),
        s.bits_per_byte(),
        s.breakdown(),
        if compress { "compressed" } else { "decompressed" },
        s.raw_bytes as f64 / 1e6 / secs,
        secs,
    );
}

/// One `-l` row.
fn list_row(s: &Stats, model: &str, name: &str) -> String {
    format!(
        "{:>12} {:>12} {:>7.2}% {:>7.3}  {:<32}  {:<24}  {}",
        s.packed_bytes,
        s.raw_bytes,
        s.percent(),
        s.bits_per_byte(),
        model,
        s.breakdown(),
        name
    )
}

/// `-l`'s header line.
const LIST_HEADER: &str =
    "  compressed     original    ratio     bpb  model                             frames                    name";

/// `-l`: one row per stream of `p` (added to `total`; returns how many); with `-v`, each stream's format and chunk
/// size, and one line per frame.
fn list_one(p: &Path, verbose: bool, total: &mut Stats) -> Result<usize> {
    let opened = open_input(p, false)?;
    let mut src = reader(opened.file);
    // with -v, each stream's lines (its header's, then one per frame), complete at its end frame
    let mut details: Vec<Vec<String>> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut visit = |h: &Header, f: &Frame| {
        if !verbose {
            return;
        }
        if current.is_empty() {
            current.push(format!(
                "    format {}, chunks of {} KiB, model {}",
                h.version,
                h.chunk_size.div_ceil(1024),
                crate::model::hex(&h.model_id)
            ));
        }
        let (kind, checksum) = match f {
            Frame::Stored { checksum, .. } => ("stored", checksum),
            Frame::Lzma { checksum, .. } => ("LZMA", checksum),
            Frame::Cm { model, checksum, .. } => (model.name(), checksum),
            Frame::Bwt { sorter, checksum, .. } => (sorter.name(), checksum),
            Frame::Model { checksum, .. } => ("model", checksum),
            Frame::Blend { checksum, .. } => ("blend", checksum),
            Frame::Direct { checksum, .. } => ("direct", checksum),
            Frame::End { checksum, .. } => {
                current.push(format!(
                    "    end      {:>10} -> {:>10} bytes  xxh64 {checksum:016x} of header and content",
                    f.raw_len(),
                    f.encoded_len(h.version)
                ));
                details.push(std::mem::take(&mut current));
                return;
            }
        };
        current.push(format!(
            "    {kind:<8} {:>10} -> {:>10} bytes  xxh64/32 {checksum:08x}",
            f.raw_len(),
            f.encoded_len(h.version)
        ));
    };
    let streams = codec::list_frames(&mut src, &mut visit)?;
    let mut out = io::stdout().lock();
    for (i, (h, s)) in streams.iter().enumerate() {
        writeln!(out, "{}", list_row(s, &crate::model::hex(&h.model_id), &display(p)))?;
        total.add(s);
        for l in details.get(i).into_iter().flatten() {
            writeln!(out, "{l}")?;
        }
    }
    Ok(streams.len())
}

#[cfg(test)]
mod tests {
    use super::{parse_size, TempOut};

    #[test]
    fn a_target_that_appears_meanwhile_is_not_replaced_without_force() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("out.nnz");
        let mut t = TempOut::create(&target, false).unwrap();
        t.writer().write_all(b"archive").unwrap();
        // another run finished first
        std::fs::write(&target, b"theirs").unwrap();
        let e = t.commit(None).unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        assert_eq!(std::fs::read(&target).unwrap(), b"theirs");
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            1,
            "the temporary file is left"
        );
        // with -f the later run wins
        let mut t = TempOut::create(&target, true).unwrap();
        t.writer().write_all(b"archive").unwrap();
        t.commit(None).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"archive");
    }

    #[test]
    fn sizes_parse_like_other_tools() {
        assert_eq!(parse_size("8G"), Ok(8 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("1000000"), Ok(1_000_000));
        assert_eq!(parse_size("2TB"), Ok(2 << 40));
        assert!(parse_size("8X").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
