//! The `taskrouter-tracer` binary: parse the command line, run the command.

use std::process::ExitCode;

use clap::Parser;

// The writer and projections allocate many short-lived buffers, which mimalloc serves far more
// cheaply than glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    taskrouter_tracer::telemetry::init();
    let cli = taskrouter_tracer::cli::Cli::parse();
    match taskrouter_tracer::commands::run(cli.command).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
