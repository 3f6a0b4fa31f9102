//! The `wsrec` binary: parse flags, run, turn the outcome into an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = wsrec::cli::parse();
    match wsrec::app::run(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("wsrec: {e}");
            ExitCode::from(e.code())
        }
    }
}
