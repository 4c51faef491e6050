//! The `report` command (its options are `cli`'s): reads the log with a progress bar, prints
//! the figures.

use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{ByArg, Format, ReportArgs};
use crate::reports::{self, render, By, ReportSpec, StatisticsParams};
use taskrouter_protocol::{SidError, TaskQueueSid, WorkerSid, WorkflowSid, WorkspaceSid};

/// Runs `report`: exit 0, or 2 when the parameters are refused or `--verify` finds tampering.
///
/// # Errors
/// When the database cannot be opened or read.
pub async fn report(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let params = StatisticsParams {
        start_date: args.since.clone(),
        end_date: args.until.clone(),
        minutes: args.minutes.clone(),
        split_by_wait_time: args.split_by_wait_time.clone(),
        task_channel: args.task_channel.clone(),
    };
    let window = match params.window(now_ms) {
        Ok(window) => window,
        Err(error) => {
            eprintln!("{}", error.message);
            return Ok(ExitCode::from(2));
        }
    };
    let by = match args.by {
        ByArg::Workspace => By::Workspace,
        ByArg::Queue => By::Queue,
        ByArg::Workflow => By::Workflow,
        ByArg::Worker => By::Worker,
    };
    if let Err(error) = check_sids(&args, by) {
        eprintln!("{error}");
        return Ok(ExitCode::from(2));
    }
    let spec = ReportSpec {
        workspace_sid: args.workspace.clone(),
        window,
        by,
        only: args.sid.clone().filter(|_| by != By::Workspace),
        verify: args.verify,
        buckets: 24,
        // Only the JSON output shows activity durations.
        activity_durations: args.format == Format::Json,
    };
    // Migrations (the report index) are applied first, as every command does.
    crate::storage::open(&args.database).await?.pool.close().await;
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} reading facts: {pos} ({per_sec}) {elapsed}")
            .expect("valid template"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let started = std::time::Instant::now();
    let report = tokio::task::spawn_blocking(move || {
        let mut conn = reports::open_read_only(&args.database)?;
        let result = reports::generate(&mut conn, &spec, now_ms, |n| bar.set_position(n));
        bar.finish_and_clear();
        result
    })
    .await??;
    match args.format {
        Format::Table => print!("{}", render::table(&report)),
        Format::Csv => print!("{}", render::csv(&report)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    eprintln!("report computed in {:.3} s", started.elapsed().as_secs_f64());
    Ok(match report.provenance.verification {
        reports::Verification::Failed { .. } => ExitCode::from(2),
        _ => ExitCode::SUCCESS,
    })
}

/// `--workspace` must be a Workspace's SID and `--sid` one of the kind `--by` names, so a
/// worker's SID given with `--by queue` is refused instead of reporting nothing.
fn check_sids(args: &ReportArgs, by: By) -> Result<(), SidError> {
    if let Some(workspace) = &args.workspace {
        WorkspaceSid::parse(workspace)?;
    }
    match (&args.sid, by) {
        (Some(sid), By::Queue) => TaskQueueSid::parse(sid).map(drop),
        (Some(sid), By::Workflow) => WorkflowSid::parse(sid).map(drop),
        (Some(sid), By::Worker) => WorkerSid::parse(sid).map(drop),
        _ => Ok(()),
    }
}
