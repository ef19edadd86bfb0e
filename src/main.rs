//! The `heapvis` binary: parse arguments, run one command, map the outcome to an
//! exit code (0 ok, 1 some snapshots failed, 2 fatal, 3 a
//! `summary --fail-if` condition held). All work is in the library.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(cli::Outcome::Ok) => ExitCode::SUCCESS,
        Ok(cli::Outcome::SomeSnapshotsFailed) => ExitCode::from(1),
        Ok(cli::Outcome::GateFailed) => ExitCode::from(3),
        Err(e) => {
            // A closed pipe (`heapvis inspect | head`) is not an error.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("heapvis: {}", cli::error_line(&e));
            ExitCode::from(2)
        }
    }
}
