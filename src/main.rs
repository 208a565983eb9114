fn main() {
    if let Err(e) = nib::cli::main() {
        // One line, no backtrace: bad input is reported, not panicked on.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
