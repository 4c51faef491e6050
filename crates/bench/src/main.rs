//! The `taskrouter-bench` binary: the benchmark (writes BENCHMARKS.md), the log generator, and
//! the tracer's own commands as the benchmark runs them (its children).

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// As the tracer's binary: the bench measures the tracer with the allocator it ships with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "taskrouter-bench",
    about = "Measures the tracer on this machine (ingest, workload shapes, constant rate, one hot task, a soak, reads at scale, the Events API, Event Streams) and writes BENCHMARKS.md.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<BenchCommand>,
    #[command(flatten)]
    run: Box<taskrouter_bench::BenchArgs>,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Build a large log fast from simulated traffic: the same rows as ingest writes.
    Generate(taskrouter_bench::generate::GenerateArgs),
    /// Run one of the tracer's commands (`taskrouter-bench tracer serve …` is `taskrouter-tracer
    /// serve …`), as the benchmark does for its children.
    Tracer {
        /// Also serve the baseline (`POST /webhooks/bench-baseline`) and the floor
        /// (`POST /webhooks/bench-floor`) that ingest is compared against.
        #[arg(long = taskrouter_bench::server::REFERENCE_ENDPOINTS_OPTION)]
        reference_endpoints: bool,
        /// The tracer's command line, from its command on.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<OsString>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    taskrouter_tracer::telemetry::init();
    let cli = Cli::parse();
    let outcome = match cli.command {
        None => taskrouter_bench::run(*cli.run).await,
        Some(BenchCommand::Generate(args)) => taskrouter_bench::generate::run(args).await,
        Some(BenchCommand::Tracer { reference_endpoints, args }) => {
            run_tracer(reference_endpoints, args).await
        }
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_tracer(reference_endpoints: bool, args: Vec<OsString>) -> anyhow::Result<ExitCode> {
    use taskrouter_tracer::cli::{Cli, Command};
    let cli = Cli::parse_from(std::iter::once(OsString::from("taskrouter-tracer")).chain(args));
    let extra_routes = match (&cli.command, reference_endpoints) {
        (Command::Serve(serve), true) => Some(taskrouter_bench::reference::routes(&serve.database.database)?),
        _ => None,
    };
    taskrouter_tracer::commands::run_with_routes(cli.command, extra_routes).await
}
