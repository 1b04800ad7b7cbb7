fn main() {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("nnz: internal error: {info}; please report this with the input that caused it");
    }));
    nnz::cli::install_interrupt_handler();
    let args = nnz::cli::parse_args(std::env::args_os().collect());
    std::process::exit(nnz::cli::run(args));
}
