//! What each subcommand does, for `main` to call.

use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{Command, DatabaseArgs, RebuildArgs, ServeArgs, TimelineArgs};
use crate::projections;
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
        Command::Generate(args) => generate(args).await,
        Command::Rebuild(args) => rebuild(args).await,
        Command::Timeline(args) => timeline(args).await,
        Command::Report(args) => crate::reports::cli::report(args).await,
        Command::Bench(args) => crate::bench::run(*args).await,
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

async fn rebuild(args: RebuildArgs) -> anyhow::Result<ExitCode> {
    let mut connection = storage::open_maintenance(&args.database.database).await?;
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "rebuilding {bar:40} {pos}/{len} facts then tasks ({per_sec}, {eta} left)",
        )
        .expect("valid template"),
    );
    let started = std::time::Instant::now();
    let report = projections::rebuild(&mut connection, &args.projection.config(), |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    println!(
        "rebuilt from {} facts: {} tasks, {} workers in {:.1} s",
        report.facts,
        report.tasks,
        report.workers,
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

async fn timeline(args: TimelineArgs) -> anyhow::Result<ExitCode> {
    let store = storage::open(&args.database.database).await?;
    let detail = projections::reads::task_detail(&store.pool, &args.task_sid).await?;
    store.pool.close().await;
    let Some(detail) = detail else {
        eprintln!("no task {} in the projections (try `rebuild`)", args.task_sid);
        return Ok(ExitCode::from(3));
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&detail)?);
    } else {
        print!("{}", projections::reads::render_text(&detail));
    }
    Ok(ExitCode::SUCCESS)
}

async fn generate(args: crate::generate::GenerateArgs) -> anyhow::Result<ExitCode> {
    let report = crate::generate::generate(&args).await?;
    let rows = report.rows.max(1) as f64;
    println!("rows written: {}", report.rows);
    println!(
        "time: {:.1} s ({:.0} rows/s)",
        report.elapsed.as_secs_f64(),
        report.rows as f64 / report.elapsed.as_secs_f64().max(1e-9)
    );
    println!(
        "database: {} bytes, {:.0} bytes per row; raw bodies {:.0} bytes per row ({:.2}x)",
        report.database_bytes,
        report.database_bytes as f64 / rows,
        report.body_bytes as f64 / rows,
        report.database_bytes as f64 / report.body_bytes.max(1) as f64
    );
    Ok(ExitCode::SUCCESS)
}
