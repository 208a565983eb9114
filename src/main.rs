fn main() {
    restore_default_sigpipe();
    if let Err(e) = nib::cli::main() {
        // One line, no backtrace: bad input is reported, not panicked on.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// A command-line tool whose reader goes away (`nib run ... | head`, `nib info | grep -q`) should
/// end quietly, as C tools do. Rust ignores SIGPIPE by default, so every `println!` after the
/// reader closed would panic with "Broken pipe"; give SIGPIPE back its default action instead.
fn restore_default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any other thread exists; setting a signal's
    // disposition to SIG_DFL installs no handler code, so nothing can run in signal context.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
