//! What each subcommand does, for `main` to call: `serve`, `verify`, `rebuild`, `timeline`,
//! `connect` here; `import` and `report` in their own modules; `demo` and `simulate` in `demo`.

pub mod import;
mod report;

use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{Command, DatabaseArgs, RebuildArgs, ServeArgs, TimelineArgs};
use crate::projections;
use crate::settings::Settings;
use crate::startup::{Application, ExtraRoutes};
use crate::storage::{self, event_log};

/// Runs `command`.
///
/// # Errors
/// Whatever stopped the command.
pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    run_with_routes(command, None).await
}

/// Runs `command`; `serve` also answers `extra_routes` (the benchmark's reference endpoints).
///
/// # Errors
/// Whatever stopped the command.
pub async fn run_with_routes(
    command: Command,
    extra_routes: Option<ExtraRoutes>,
) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve(*args, extra_routes).await,
        Command::Verify(args) => verify(args).await,
        Command::Demo(args) => crate::demo::demo(*args).await,
        Command::Simulate(args) => crate::demo::simulate(*args).await,
        Command::Rebuild(args) => rebuild(args).await,
        Command::Timeline(args) => timeline(args).await,
        Command::Report(args) => report::report(args).await,
        Command::Import(args) => import::import(*args).await,
        Command::Connect(args) => connect_command(*args, false).await,
        Command::Disconnect(args) => connect_command(*args, true).await,
    }
}

async fn serve(args: ServeArgs, extra_routes: Option<ExtraRoutes>) -> anyhow::Result<ExitCode> {
    let settings = args.into_settings();
    let listen = settings.listen;
    let connect = if settings.connect {
        let Some(public_url) = settings.public_url.clone() else {
            anyhow::bail!("--connect needs --public-url")
        };
        let Some(workspace) = settings.workspace_sid.clone() else {
            anyhow::bail!("--connect needs --workspace-sid")
        };
        Some((workspace, public_url))
    } else {
        None
    };
    // Listened for before anything is connected, so a signal at any moment ends in a disconnect.
    let mut signals = if connect.is_some() {
        use tokio::signal::unix::{signal, SignalKind};
        Some((signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?))
    } else {
        None
    };
    let application = Application::build_with_routes(settings, extra_routes).await?;
    tracing::info!(%listen, port = application.port(), "taskrouter-tracer listening");
    let connector = match (&connect, application.connector()) {
        (Some(_), None) => {
            anyhow::bail!("--connect needs REST credentials: {}", crate::taskrouter_client::SET_CREDENTIALS)
        }
        (Some((workspace, public_url)), Some(connector)) => {
            let report = connector.connect(workspace, public_url, false).await.map_err(anyhow::Error::msg)?;
            print_report("connect", &report);
            if report.failure.is_some() {
                return Ok(ExitCode::from(1));
            }
            Some(connector)
        }
        (None, _) => None,
    };
    // SIGINT and SIGTERM stop the server gracefully; then what connect changed is put back.
    let handle = application.handle();
    let server = application.run_until_stopped();
    tokio::pin!(server);
    match &mut signals {
        Some((terminate, interrupt)) => {
            tokio::select! {
                result = &mut server => result?,
                _ = terminate.recv() => {
                    tokio::spawn(handle.stop(true));
                    server.await?;
                }
                _ = interrupt.recv() => {
                    tokio::spawn(handle.stop(true));
                    server.await?;
                }
            }
        }
        None => server.await?,
    }
    if let (Some(connector), Some((workspace, _))) = (connector, connect) {
        let report = connector.disconnect(&workspace, false).await.map_err(anyhow::Error::msg)?;
        print_report("disconnect", &report);
        if report.failure.is_some() || !report.conflicts.is_empty() {
            return Ok(ExitCode::from(2));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints what `connect` or `disconnect` did.
pub fn print_report(what: &str, report: &crate::connect::Report) {
    for warning in &report.warnings {
        eprintln!("{what}: warning: {warning}");
    }
    for change in &report.changes {
        println!("{what}: {change}");
    }
    if report.changes.is_empty() && report.failure.is_none() && report.conflicts.is_empty() {
        println!("{what}: nothing to change");
    }
    for conflict in &report.conflicts {
        eprintln!("{what}: {conflict}");
    }
    if let Some(failure) = &report.failure {
        eprintln!("{what}: FAILED: {failure}");
    }
}

/// `connect` and `disconnect`.
async fn connect_command(args: crate::cli::ConnectArgs, disconnect: bool) -> anyhow::Result<ExitCode> {
    let Some(client) = args.rest.client() else {
        eprintln!(
            "connect and disconnect need REST credentials: {}.",
            crate::taskrouter_client::SET_CREDENTIALS
        );
        return Ok(ExitCode::from(2));
    };
    let store = storage::open(&args.database.database).await?;
    let writer = command_writer(&args.database.database, Default::default())?;
    let connector =
        crate::connect::Connector { client, writer, pool: store.pool.clone(), targets: Default::default() };
    let outcome = if disconnect {
        connector.disconnect(&args.workspace_sid, args.force).await
    } else {
        let Some(public_url) = args.public_url.as_deref() else {
            eprintln!("connect needs --public-url: the tracer's URL as TaskRouter reaches it");
            return Ok(ExitCode::from(2));
        };
        connector.connect(&args.workspace_sid, public_url, args.dry_run).await
    };
    let what = if disconnect { "disconnect" } else { "connect" };
    match outcome {
        Err(problem) => {
            eprintln!("{what}: nothing changed: {problem}");
            Ok(ExitCode::from(2))
        }
        Ok(report) => {
            print_report(what, &report);
            Ok(if !report.conflicts.is_empty() {
                ExitCode::from(2)
            } else if report.failure.is_some() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

/// The writer of a command that appends to a log and serves nothing (`import`, `connect`):
/// `serve`'s defaults, the projections folded with `projection`.
///
/// # Errors
/// When the database cannot be opened for writing.
fn command_writer(
    database: &std::path::Path,
    projection: projections::ProjectionConfig,
) -> anyhow::Result<crate::storage::writer::Writer> {
    let settings = Settings { database: database.into(), ..Settings::default() };
    crate::storage::writer::Writer::start(
        settings.writer_config(),
        Default::default(),
        projections::Projector::new(projection),
    )
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
    if args.check {
        return rebuild_check(args).await;
    }
    let mut connection = storage::open_maintenance(&args.database.database).await?;
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "rebuilding {bar:40} {pos}/{len} log rows, then tasks ({per_sec}, {eta} left)",
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
        "rebuilt from {} facts: {} tasks, {} workers in {:.1} s ({} tasks read back from the log)",
        report.facts,
        report.tasks,
        report.workers,
        started.elapsed().as_secs_f64(),
        report.read_back
    );
    Ok(ExitCode::SUCCESS)
}

async fn timeline(args: TimelineArgs) -> anyhow::Result<ExitCode> {
    let store = storage::open(&args.database.database).await?;
    let detail = projections::details::task_detail(&store.pool, &args.task_sid).await?;
    store.pool.close().await;
    let Some(detail) = detail else {
        eprintln!("no task {} in the projections (try `rebuild`)", args.task_sid);
        return Ok(ExitCode::from(3));
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&detail)?);
    } else {
        print!("{}", projections::details::render_text(&detail));
    }
    Ok(ExitCode::SUCCESS)
}

async fn rebuild_check(args: RebuildArgs) -> anyhow::Result<ExitCode> {
    // Migrations first, as every maintenance command does; the comparison itself only reads.
    drop(storage::open_maintenance(&args.database.database).await?);
    let comparison = compare_with_rebuild(&args.database.database, &args.projection.config())?;
    match comparison.first_difference(RebuildComparison::SHOWN_LINES) {
        None => {
            println!(
                "projections equal a rebuild: {} facts, {} projection rows",
                comparison.facts,
                comparison.stored.lines().filter(|l| !l.starts_with("== ")).count()
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(lines) => {
            println!("PROJECTIONS DIFFER from a rebuild of the log ({} facts):", comparison.facts);
            for line in lines {
                println!("{line}");
            }
            Ok(ExitCode::from(2))
        }
    }
}

/// The projections as stored (folded incrementally at ingest) beside the projections a full
/// rebuild of the same log gives.
pub struct RebuildComparison {
    pub facts: u64,
    /// [`projections::dump`] of the stored projections.
    pub stored: String,
    /// [`projections::dump`] after [`projections::rebuild`].
    pub rebuilt: String,
}

impl RebuildComparison {
    /// Lines of each side shown from the first difference on.
    pub const SHOWN_LINES: usize = 3;

    /// `None` when equal; else the table and the first differing lines, `-` stored, `+` rebuilt.
    pub fn first_difference(&self, shown: usize) -> Option<Vec<String>> {
        if self.stored == self.rebuilt {
            return None;
        }
        let stored: Vec<&str> = self.stored.lines().collect();
        let rebuilt: Vec<&str> = self.rebuilt.lines().collect();
        let first =
            (0..stored.len().max(rebuilt.len())).find(|&i| stored.get(i) != rebuilt.get(i)).unwrap_or(0);
        let table = stored[..first.min(stored.len())].iter().rev().find(|l| l.starts_with("== "));
        let mut out = vec![format!("in table {}, line {}:", table.map_or("?", |t| &t[3..]), first + 1)];
        let side = |lines: &[&str], mark: char| {
            let end = lines.len().min(first + shown);
            let start = first.min(end);
            let mut shown_lines: Vec<String> =
                lines[start..end].iter().map(|l| format!("{mark} {l}")).collect();
            if shown_lines.is_empty() {
                shown_lines.push(format!("{mark} (nothing)"));
            }
            shown_lines
        };
        out.extend(side(&stored, '-'));
        out.extend(side(&rebuilt, '+'));
        Some(out)
    }
}

/// Rebuilds the projections in a scratch copy of `database` and compares them with the stored
/// ones (once they have taken in every row of the copy). The copy (`VACUUM INTO`, one consistent snapshot, taken without blocking a running
/// server) sits beside the database and is removed afterwards; the database is not changed.
/// A copy rather than a rolled-back transaction, because [`projections::rebuild`] commits its
/// own transaction.
///
/// # Errors
/// When the database cannot be read or the copy cannot be written.
pub fn compare_with_rebuild(
    database: &std::path::Path,
    config: &projections::ProjectionConfig,
) -> anyhow::Result<RebuildComparison> {
    let mut scratch = database.as_os_str().to_owned();
    scratch.push(format!(".rebuild-check-{}", std::process::id()));
    let scratch = std::path::PathBuf::from(scratch);
    let remove_scratch = || {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut path = scratch.as_os_str().to_owned();
            path.push(suffix);
            let _ = std::fs::remove_file(std::path::PathBuf::from(path));
        }
    };
    remove_scratch();
    let outcome = (|| -> anyhow::Result<RebuildComparison> {
        let source = rusqlite::Connection::open(database)?;
        source.busy_timeout(std::time::Duration::from_secs(30))?;
        source.execute("VACUUM INTO ?1", [scratch.to_string_lossy()])?;
        drop(source);
        let mut copy = rusqlite::Connection::open(&scratch)?;
        // WAL, as the log itself: the rebuild's reader threads read the copy while its write
        // transaction runs, and a transaction larger than the page cache spills to the file,
        // which in the copy's rollback-journal mode must wait for those readers ("database is
        // locked" on a large log).
        copy.pragma_update(None, "journal_mode", "WAL")?;
        // A scratch file: losing it to a crash loses nothing.
        copy.pragma_update(None, "synchronous", "OFF")?;
        // Rows the projections had not taken in when the copy was made are taken in first, as
        // a server started on the copy would: what is compared is where they resume to.
        projections::projector::catch_up(&mut copy, &mut projections::Engine::new(config.clone()))?;
        let stored = projections::dump(&copy)?;
        let report = projections::rebuild(&mut copy, config, |_, _| {})?;
        let rebuilt = projections::dump(&copy)?;
        Ok(RebuildComparison { facts: report.facts, stored, rebuilt })
    })();
    remove_scratch();
    outcome
}
