//! Wiring: builds the shared state, binds the listener, and runs the server. Tests build an
//! [`Application`] on port 0 and read the real port back.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_service::{fn_service, map_config, IntoServiceFactory, ServiceFactoryExt};
use actix_web::dev::{AppConfig, Server};
use actix_web::{web, App};

use crate::head_deadline::{self, HeadDeadlineStream};
use crate::ingest::{Ingest, IngestConfig};
use crate::metrics::Metrics;
use crate::relay::Relay;
use crate::routes::{self, AppState};
use crate::settings::Settings;
use crate::storage;
use crate::storage::writer::Writer;

/// How long a client may take to send a request head, from its first byte (every request on a
/// connection, not only the first). TaskRouter sends a head in one packet.
pub const REQUEST_HEAD_DEADLINE: Duration = Duration::from_secs(10);

/// Routes added to the server by a program embedding it (the benchmark's reference endpoints),
/// configured on every worker's app after the tracer's own.
pub type ExtraRoutes = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// A built, bound, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
    progress: Arc<crate::storage::progress::ProjectionProgress>,
    history: Arc<crate::history::History>,
    connector: Option<crate::connect::Connector>,
    alerts: Arc<crate::alerts::Alerts>,
}

impl Application {
    /// Opens the database (applying migrations), starts the writer and binds the listener.
    ///
    /// # Errors
    /// When the database cannot be opened or the address cannot be bound.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_routes(settings, None).await
    }

    /// As [`Application::build`], the server also answering `extra_routes`.
    ///
    /// # Errors
    /// When the database cannot be opened or the address cannot be bound.
    pub async fn build_with_routes(
        settings: Settings,
        extra_routes: Option<ExtraRoutes>,
    ) -> anyhow::Result<Self> {
        // Checked first: a public listener without a password must not start at all.
        let security = routes::security::WebSecurity::new(
            settings.ui_password.as_ref().map(|p| p.expose()),
            !settings.listen.ip().is_loopback(),
        )?;
        let store = storage::open(&settings.database).await?;
        let instructions = crate::instructions::AssignmentInstructions::load(&store.pool).await?;
        let metrics = Arc::new(Metrics::default());
        // Exposed here only: signing and checking signatures need the token itself.
        let auth_token = settings.twilio.auth_token.as_ref().map(|token| token.expose().to_string());
        let writer = Writer::start(
            settings.writer_config(),
            metrics.clone(),
            crate::projections::Projector::new(settings.projection.clone()),
        )?;
        // One outbound client (one connection pool) for forwarding and replays alike.
        let relay = Relay::new(auth_token.clone());
        // One REST client (one connection pool) for actions, the Events API and connect alike.
        let rest_client = settings.rest.client(&settings.twilio);
        let connected = crate::connect::SharedTargets::default();
        let connector = rest_client.clone().map(|client| crate::connect::Connector {
            client,
            writer: writer.clone(),
            pool: store.pool.clone(),
            targets: connected.clone(),
        });
        if let (Some(connector), Some(workspace)) = (&connector, &settings.workspace_sid) {
            // Restarted while connected: keep forwarding to the originals.
            connector.load_targets(workspace).await;
        }
        let ingest = Ingest::new(
            IngestConfig {
                auth_token,
                signature_mode: settings.signature_mode(),
                public_url: settings.public_url.clone(),
                body_limit: settings.body_limit,
                forward_to: settings.forward_to.clone(),
                connected,
            },
            writer.clone(),
            relay.clone(),
        );
        let actions = crate::actions::Actions::new(
            rest_client.clone(),
            settings.workspace_sid.clone(),
            writer.clone(),
            store.pool.clone(),
        );
        let history = crate::history::History::new(
            crate::history::HistoryConfig {
                client: rest_client,
                workspaces: settings.workspace_sid.iter().filter(|w| !w.is_empty()).cloned().collect(),
                follow_every: settings.follow_events_api.map(Duration::from_secs),
                reconcile_every: settings.reconcile_interval(),
            },
            writer.clone(),
            store.pool.clone(),
        );
        if settings.follow_events_api.is_some() && !history.has_credentials() {
            anyhow::bail!(
                "--follow-events-api needs REST credentials: {}",
                crate::taskrouter_client::SET_CREDENTIALS
            );
        }
        if settings.follow_events_api.is_some()
            && history.workspaces().is_empty()
            && !settings.workspace_known_later
        {
            anyhow::bail!("--follow-events-api needs --workspace-sid (the Workspace to follow)");
        }
        history.start_pollers();
        let history_handle = history.clone();
        let listener = TcpListener::bind(settings.listen)?;
        let address = listener.local_addr()?;
        let port = address.port();
        let loopback = if address.ip().is_unspecified() {
            format!("http://127.0.0.1:{port}")
        } else {
            format!("http://{address}")
        };
        let demo_inbox =
            settings.demo_alert_receiver.then(|| web::Data::new(routes::alerts::DemoInbox::default()));
        let alerts = crate::alerts::Alerts::load(
            crate::alerts::AlertsConfig {
                webhooks: settings.alert_webhooks.clone(),
                demo_receiver: demo_inbox
                    .as_ref()
                    .map(|_| format!("{loopback}{}", routes::alerts::DEMO_RECEIVER_PATH)),
                public_url: settings.public_url.clone().unwrap_or_else(|| loopback.clone()),
                database: settings.database.clone(),
            },
            store.pool.clone(),
            writer.clone(),
        )
        .await?;
        alerts.start(writer.health.clone(), writer.progress.clone());
        let state = web::Data::new(AppState {
            ingest,
            relay,
            store,
            metrics,
            writer_health: writer.health.clone(),
            progress: writer.progress.clone(),
            actions,
            instructions,
            security,
            history,
            connector: connector.clone(),
            alerts: alerts.clone(),
        });
        // actix-web's `HttpServer`, assembled by hand so each connection's stream can be wrapped
        // in a `HeadDeadlineStream` (actix times out only a connection's first request head).
        let mut server = actix_server::Server::build();
        if let Some(workers) = settings.workers {
            server = server.workers(workers.max(1));
        }
        // As `HttpServer` does: a graceful stop closes idle kept-alive connections at once.
        let stopping = server.graceful_shutdown_signal();
        let server = server.listen("taskrouter-tracer", listener, move || {
            let app = App::new()
                .app_data(state.clone())
                .wrap(actix_web::middleware::from_fn(routes::consistency::projections_caught_up))
                .wrap(actix_web::middleware::from_fn(routes::security::guard))
                .wrap(actix_web::middleware::from_fn(head_deadline::request_reached_app))
                .configure(routes::configure);
            let app = match demo_inbox.clone() {
                Some(inbox) => app.app_data(inbox).configure(routes::alerts::demo_receiver),
                None => app,
            };
            let app = match extra_routes.clone() {
                Some(extra) => app.configure(move |config| extra(config)),
                None => app,
            };
            let stopping = stopping.clone();
            let http = actix_http::HttpService::build()
                .graceful_shutdown_signal(move || {
                    let stopping = stopping.clone();
                    async move { stopping.notified().await }
                })
                // Silent connections (no byte at all) are actix's: closed after this. Once a
                // byte arrives, the stream's own (shorter) deadline answers 408 with a reason.
                .client_request_timeout(REQUEST_HEAD_DEADLINE + Duration::from_secs(2))
                .client_disconnect_timeout(Duration::from_secs(2))
                .local_addr(address)
                .on_connect_ext(|stream: &HeadDeadlineStream, data| {
                    data.insert(stream.progress());
                })
                .finish(map_config(
                    app.into_factory().map_err(|error: actix_web::Error| error.error_response()),
                    // What `HttpServer` passes: the bound address stands in for a missing Host.
                    move |_| AppConfig::__priv_test_new(false, address.to_string(), address),
                ));
            fn_service(|stream: actix_web::rt::net::TcpStream| async move {
                let stream = HeadDeadlineStream::new(stream, REQUEST_HEAD_DEADLINE);
                let peer = stream.peer_addr().ok();
                Ok::<_, actix_http::error::DispatchError>((stream, actix_http::Protocol::Http1, peer))
            })
            .and_then(http)
        })?;
        Ok(Self {
            port,
            server: server.run(),
            progress: writer.progress.clone(),
            history: history_handle,
            connector,
            alerts,
        })
    }

    /// A handle to stop the server.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// How far the projections have followed the log (tests wait on it before reading the
    /// database directly).
    pub fn projection_progress(&self) -> Arc<crate::storage::progress::ProjectionProgress> {
        self.progress.clone()
    }

    /// The Events API side (to follow a workspace known only once the server is built).
    pub fn history(&self) -> Arc<crate::history::History> {
        self.history.clone()
    }

    /// `connect`/`disconnect` for this server's log and forwarding (with REST credentials).
    pub fn connector(&self) -> Option<crate::connect::Connector> {
        self.connector.clone()
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the process is told to stop.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let stopped = self.server.await;
        // A server started again on the same database takes the alerts over.
        self.alerts.stop().await;
        stopped
    }
}
