fn main() {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("nnz: internal error: {info}; please report this with the input that caused it");
    }));
    nnz::cli::install_interrupt_handler();
    let args = nnz::cli::parse_args(std::env::args_os().collect());
    let status = nnz::cli::run(args);
    if status == nnz::cli::BROKEN_PIPE {
        die_of_sigpipe();
    }
    std::process::exit(status);
}

/// End the way gzip and xz do when their reader goes away: killed by SIGPIPE (Rust ignores the
/// signal, so nnz saw EPIPE instead), which shells report as status 141 and tar does not count as a
/// failure of its filter.
fn die_of_sigpipe() {
    #[cfg(unix)]
    // SAFETY: restoring the default action of a signal and raising it has no memory effects
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
}
