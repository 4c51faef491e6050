//! What each subcommand does, for `main` to call.

use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{Command, DatabaseArgs, ServeArgs};
use crate::startup::Application;
use crate::storage::{self, event_log};

/// Runs `command`.
///
/// # Errors
/// Whatever stopped the command.
pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve(*args).await,
        Command::Verify(args) => verify(args).await,
        Command::Demo(args) => crate::simulator::cli::demo(*args).await,
        Command::Simulate(args) => crate::simulator::cli::simulate(*args).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let listen = args.listen;
    let application = Application::build(args).await?;
    tracing::info!(%listen, port = application.port(), "taskrouter-tracer listening");
    application.run_until_stopped().await?;
    Ok(ExitCode::SUCCESS)
}

async fn verify(args: DatabaseArgs) -> anyhow::Result<ExitCode> {
    let connection = storage::open_maintenance(&args.database).await?;
    let total: u64 = connection.query_row("SELECT COUNT(*) FROM events", [], |r| r.get::<_, i64>(0))? as u64;
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("verifying {bar:40} {pos}/{len} rows ({per_sec}, {eta} left)")
            .expect("valid template"),
    );
    let report = event_log::verify(&connection, |n| bar.set_position(n))?;
    bar.finish_and_clear();
    println!("rows checked: {}", report.rows_checked);
    println!("head: row {} hash {}", report.head_id, hex::encode(report.head_hash));
    match report.first_bad_row {
        None => {
            println!("chain intact");
            Ok(ExitCode::SUCCESS)
        }
        Some((id, why)) => {
            println!("TAMPERED: row {id}: {why}");
            Ok(ExitCode::from(2))
        }
    }
}
