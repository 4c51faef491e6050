//! `taskrouter-bench generate`: builds a large log fast, for benchmarks and measurements.
//!
//! The simulator's engine runs in virtual time (no HTTP); every callback it emits is signed
//! for the tracer's URL, judged by the same [`Ingest::decide`] the webhook endpoints use, and
//! committed through the same [`projector::commit_records`] transaction (dedup, hash chain,
//! projections). Only the transport is skipped and commits are large, so the rows are exactly
//! what ingest would have written for that traffic. Deciding and committing run on two threads.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use taskrouter_protocol::signature;
use taskrouter_protocol::webhook::encode_form;
use taskrouter_protocol::Endpoint;
use taskrouter_simulator::engine::{Engine, OutboundKind};
use taskrouter_simulator::scenario::{self, CallbackUrls, DemoTraffic};
use taskrouter_tracer::ingest::{Ingest, IngestConfig, ReceivedRequest, SignatureMode};
use taskrouter_tracer::projections::projector::{self, Projector};
use taskrouter_tracer::projections::ProjectionConfig;
use taskrouter_tracer::relay::Relay;
use taskrouter_tracer::storage;
use taskrouter_tracer::storage::event_log::NewRecord;
use taskrouter_tracer::storage::writer::{self, Writer, WriterConfig};

/// The URL the generated callbacks were "sent" to (signatures are computed for it).
const TRACER_BASE: &str = "https://tracer.example.com";
const AUTH_TOKEN: &str = "generated-log-auth-token";
const ACCOUNT: &str = "AC0000000000000000000000000000be11";

/// What to generate.
#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub database: taskrouter_tracer::cli::DatabaseArgs,
    /// Log rows to add (about; the last task's callbacks finish the batch).
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Seed of the simulated traffic.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Simulated tasks per minute of virtual time.
    #[arg(long, default_value_t = 240.0)]
    pub rate: f64,
    /// Rows per transaction.
    #[arg(long, default_value_t = 20_000)]
    pub batch: usize,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct GenerateReport {
    pub rows: u64,
    pub elapsed: Duration,
    pub database_bytes: u64,
    pub body_bytes: u64,
}

/// `taskrouter-bench generate`: builds the log and prints what it wrote.
///
/// # Errors
/// When the log cannot be written.
pub async fn run(args: GenerateArgs) -> anyhow::Result<std::process::ExitCode> {
    let report = generate(&args).await?;
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
    Ok(std::process::ExitCode::SUCCESS)
}

/// Generates the log.
///
/// # Errors
/// When the database cannot be opened or written.
pub async fn generate(args: &GenerateArgs) -> anyhow::Result<GenerateReport> {
    let path: PathBuf = args.database.database.clone();
    storage::open(&path).await?.pool.close().await;
    // Decisions need an `Ingest`; its writer is never used, the rows go through `commit_records`.
    let idle_writer = Writer::start(
        WriterConfig {
            database: path.clone(),
            synchronous: writer::Synchronous::Normal,
            max_batch: 1,
            busy_timeout: Duration::from_secs(5),
            queue_capacity: 1,
            wal_restart_frames: taskrouter_tracer::storage::writer::DEFAULT_WAL_RESTART_FRAMES,
        },
        Default::default(),
        Projector::new(ProjectionConfig::default()),
    )?;
    let ingest = Ingest::new(
        IngestConfig {
            auth_token: Some(AUTH_TOKEN.to_string()),
            signature_mode: SignatureMode::Enforce,
            public_url: Some(TRACER_BASE.to_string()),
            body_limit: 64 * 1024,
            forward_to: None,
            connected: Default::default(),
        },
        idle_writer,
        Relay::new(None),
    );
    // Deciding (simulation, signing, compression) and committing each take about one core:
    // the committer runs on its own thread, a few batches behind.
    let (batches, committer_inbox) = std::sync::mpsc::sync_channel::<Vec<NewRecord>>(2);
    let bar = ProgressBar::new(args.events).with_style(
        ProgressStyle::with_template("generating {bar:40} {pos}/{len} rows ({per_sec}, {eta} left)")
            .expect("valid template"),
    );
    let committer = {
        let path = path.clone();
        let bar = bar.clone();
        std::thread::Builder::new().name("generate-commit".into()).spawn(move || -> anyhow::Result<()> {
            let mut connection = rusqlite::Connection::open(&path)?;
            connection.set_prepared_statement_cache_capacity(writer::STATEMENT_CACHE);
            connection.pragma_update(None, "journal_mode", "WAL")?;
            // A generated log is rebuilt from scratch if the machine dies; durability per batch is moot.
            connection.pragma_update(None, "synchronous", "OFF")?;
            connection.pragma_update(None, "cache_size", -262_144)?;
            let mut projections = taskrouter_tracer::projections::Engine::new(ProjectionConfig::default());
            for batch in committer_inbox {
                projector::commit_records(&mut connection, batch.iter(), &[], &mut projections)?;
                bar.inc(batch.len() as u64);
            }
            connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            Ok(())
        })?
    };

    let mut engine = Engine::new(args.seed, 1_700_000_000_000, Some(ACCOUNT.to_string()));
    let traffic =
        DemoTraffic { tasks_per_minute: args.rate, arrivals_for_ms: i64::MAX / 4, reservation_timeout: 120 };
    scenario::build_demo(&mut engine, &CallbackUrls::tracer(TRACER_BASE), &traffic);

    let started = Instant::now();
    let (mut rows, mut body_bytes) = (0u64, 0u64);
    let mut batch = Vec::with_capacity(args.batch);
    while rows < args.events {
        let Some(outbound) = engine.take_outbox() else {
            match engine.next_timer_at() {
                Some(at) => engine.advance_to(at),
                None => break,
            }
            continue;
        };
        let endpoint = match outbound.kind {
            OutboundKind::Assignment { .. } => Endpoint::Assignment,
            OutboundKind::Event { .. } => Endpoint::Events,
        };
        let path_and_query = outbound.url.strip_prefix(TRACER_BASE).unwrap_or("/").to_string();
        let body = encode_form(&outbound.params).into_bytes();
        body_bytes += body.len() as u64;
        let headers = vec![
            ("host".to_string(), "tracer.example.com".to_string()),
            ("user-agent".to_string(), "TwilioProxy/1.1".to_string()),
            ("content-type".to_string(), "application/x-www-form-urlencoded".to_string()),
            ("content-length".to_string(), body.len().to_string()),
            (
                "x-twilio-signature".to_string(),
                signature::compute(AUTH_TOKEN, &outbound.url, &outbound.params),
            ),
            ("i-twilio-idempotency-token".to_string(), outbound.idempotency_token.clone()),
        ];
        let decision = ingest.decide(
            endpoint,
            ReceivedRequest {
                method: "POST".to_string(),
                path_and_query,
                headers,
                body,
                body_truncated: false,
                read_error: None,
                remote_addr: Some("127.0.0.1:40000".to_string()),
                claimed_base_urls: Vec::new(),
                arrived: Instant::now(),
                arrival_ms: engine.now_ms(),
            },
            &|_| "{}".to_string(),
        );
        batch.push(decision.record);
        rows += 1;
        let full = batch.len() >= args.batch;
        if full && batches.send(std::mem::replace(&mut batch, Vec::with_capacity(args.batch))).is_err() {
            break; // the committer failed: its error is reported below
        }
    }
    if !batch.is_empty() {
        // A send error means the committer failed; join() reports why.
        let _ = batches.send(batch);
    }
    drop(batches);
    committer.join().map_err(|_| anyhow::anyhow!("the committing thread panicked"))??;
    bar.finish_and_clear();
    Ok(GenerateReport {
        rows,
        elapsed: started.elapsed(),
        database_bytes: storage::database_bytes(&path),
        body_bytes,
    })
}
