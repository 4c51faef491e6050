//! The `import` command: checks the credentials and each workspace before touching the
//! database, then fetches with a progress bar through a writer of its own (every writer reads
//! the chain's head under the write lock, so a running `serve` and an import never fork the
//! chain), and prints what it did.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::ImportArgs;
use crate::history::import::{self, Progress, Summary, Via, Window};
use crate::storage;
use crate::taskrouter_client::SET_CREDENTIALS;

/// What an `import` did.
#[derive(Debug)]
pub enum ImportRun {
    /// Nothing was started (no credentials, credentials refused, an unknown workspace), and
    /// nothing was written; the sentence says why.
    Refused(String),
    /// Each window, in words, and what came of it.
    Done(Vec<(String, Result<Summary, String>)>),
}

/// Runs `import`: exit 0 when every window was fetched, 1 when one failed (what was stored
/// stays), 2 when nothing could start (no credentials, an unknown workspace).
///
/// # Errors
/// When the database cannot be opened.
pub async fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    match run(&args, true).await? {
        ImportRun::Refused(why) => {
            eprintln!("nothing imported: {why}");
            Ok(ExitCode::from(2))
        }
        ImportRun::Done(windows) => {
            let mut failed = false;
            for (what, outcome) in windows {
                match outcome {
                    Ok(summary) => println!("{}", summary.describe()),
                    Err(error) => {
                        failed = true;
                        eprintln!("{what}: {error}");
                    }
                }
            }
            Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
    }
}

/// Does the import `args` ask for, with a progress bar on the terminal when `show_progress`.
///
/// # Errors
/// When the database cannot be opened.
pub async fn run(args: &ImportArgs, show_progress: bool) -> anyhow::Result<ImportRun> {
    let Some(client) = args.rest.client() else {
        return Ok(ImportRun::Refused(format!("import needs REST credentials: {SET_CREDENTIALS}.")));
    };
    for workspace in &args.workspace_sids {
        if let Err(error) = client.fetch_workspace(workspace).await {
            return Ok(ImportRun::Refused(error.about_workspace(workspace).summary));
        }
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    let since_ms = args.since.or_else(|| args.minutes.map(|m| now_ms - i64::from(m) * 60_000));
    let windows: Vec<Window> = if args.task_sids.is_empty() {
        vec![Window { since_ms, until_ms: args.until, task_sid: None }]
    } else {
        args.task_sids
            .iter()
            .map(|task| Window { since_ms, until_ms: args.until, task_sid: Some(task.clone()) })
            .collect()
    };
    storage::open(&args.database.database).await?;
    let writer = super::command_writer(&args.database.database, args.projection.config())?;
    let mut outcomes = Vec::new();
    for workspace in &args.workspace_sids {
        for window in &windows {
            let progress = Arc::new(Progress::default());
            let what = crate::history::describe_window(workspace, window);
            let bar = if show_progress { ProgressBar::new(1_000) } else { ProgressBar::hidden() }.with_style(
                ProgressStyle::with_template("{bar:30} {percent:>3}% of the window {msg} ({elapsed})")
                    .expect("valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            let ticker = {
                let (bar, progress, what) = (bar.clone(), progress.clone(), what.clone());
                tokio::spawn(async move {
                    loop {
                        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
                        bar.set_position((progress.fraction() * 1_000.0) as u64);
                        bar.set_message(format!(
                            "{what}: page {}, {} fetched, {} new, {} already in the log",
                            load(&progress.pages),
                            load(&progress.fetched),
                            load(&progress.new),
                            load(&progress.known)
                        ));
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                })
            };
            let outcome =
                import::run(&client, &writer, workspace, window, Via::Import, &progress, None, now_ms).await;
            ticker.abort();
            bar.finish_and_clear();
            outcomes.push((what, outcome.map_err(|e| e.to_string())));
        }
    }
    // The projections take in what was appended before the command ends (a restart would
    // otherwise do it).
    writer.progress.wait_for_rows_committed_so_far(Duration::from_secs(600)).await;
    Ok(ImportRun::Done(outcomes))
}
