//! Builds the App and the server: routes, shared state, extractor error
//! handlers, CORS, logging. Binds before running, so tests can use port 0.

use std::net::TcpListener;

use actix_cors::Cors;
use actix_web::dev::Server;
use actix_web::guard as actix_guard;
use actix_web::middleware::{from_fn, Condition};
use actix_web::{
    web, App, FromRequest, Handler, HttpRequest, HttpResponse, HttpServer, Resource, Responder,
};
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::api::{self, ApiTokens};
use crate::body::BodyTimeout;
use crate::config::Settings;
use crate::error::ApiError;
use crate::guard::{self, Guard};
use crate::health;
use crate::metrics::MetricsSource;
use crate::secret::TokenSet;
use crate::slack::{self, SlackSettings};
use crate::store::{Store, StoreError};
use crate::telemetry;

/// A bound, not yet running, klaxon server.
pub struct Application {
    port: u16,
    /// Where it listens and keeps its data, for the line that says it is up.
    listening: (std::net::SocketAddr, std::path::PathBuf),
    server: Server,
    store: Store,
    /// `GET /metrics` on its own listener (`KLAXON_METRICS_LISTEN`), without auth.
    metrics: Option<(u16, Server)>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot open the alert store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

impl Application {
    /// Opens the store and binds the listener.
    pub fn build(settings: &Settings) -> Result<Self, StartupError> {
        let store = Store::open(&settings.data_dir, &settings.store_options())?;
        let listener = TcpListener::bind(settings.listen)
            .map_err(|source| Self::bind_error(settings, source))?;
        let port = listener
            .local_addr()
            .map_err(|source| Self::bind_error(settings, source))?
            .port();
        let slack = web::Data::new(SlackSettings {
            signing_secrets: settings.signing_secrets.clone(),
            verification_tokens: settings
                .verification_tokens
                .as_ref()
                .map(|t| TokenSet::new(t.iter()))
                .unwrap_or_default(),
            default_urgency: settings.default_urgency,
        });
        let tokens = web::Data::new(ApiTokens::new(
            settings.read_tokens.as_ref(),
            settings.write_tokens.as_ref(),
        ));
        warn_of_closed_surfaces(settings, &tokens);
        let store_data = web::Data::new(store.clone());
        let guard = web::Data::new(Guard::new(settings));
        let body_timeout = web::Data::new(BodyTimeout(settings.client_timeout));
        let origins = settings.cors_origins.clone();
        crate::metrics::handle();
        crate::metrics::slack_surfaces(
            settings.signing_secrets.is_some(),
            settings.verification_tokens.is_some(),
        );
        let metrics_source = web::Data::new(MetricsSource {
            data_dir: settings.data_dir.clone(),
            min_free_bytes: settings.min_free_bytes,
        });
        let metrics = match settings.metrics_listen {
            Some(addr) => Some(Self::metrics_server(addr, &store_data, &metrics_source)?),
            None => None,
        };
        let metrics_on_main = metrics.is_none();
        let main_metrics_source = metrics_source.clone();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(guard::enforce_rate))
                .wrap(Condition::new(!origins.is_empty(), cors(&origins)))
                .wrap(from_fn(guard::enforce_network))
                .wrap(from_fn(guard::cors_refusals))
                .wrap(from_fn(telemetry::log_requests))
                .app_data(guard.clone())
                .app_data(body_timeout.clone())
                .app_data(slack.clone())
                .app_data(tokens.clone())
                .app_data(store_data.clone())
                .app_data(main_metrics_source.clone())
                .app_data(
                    web::QueryConfig::default()
                        .error_handler(|e, _| ApiError::InvalidParameter(e.to_string()).into()),
                )
                .app_data(
                    web::PathConfig::default()
                        .error_handler(|_, _| ApiError::NotFound("route").into()),
                )
                .configure(routes)
                .configure(|cfg| {
                    if metrics_on_main {
                        cfg.service(get("/metrics", crate::metrics::guarded_endpoint));
                    }
                })
                .default_service(web::to(no_route))
        })
        .client_request_timeout(settings.client_timeout)
        .client_disconnect_timeout(std::time::Duration::from_secs(1))
        .shutdown_timeout(settings.shutdown_grace.as_secs())
        // klaxon handles the signals itself: actix-web drops the requests in
        // flight on SIGINT (see `stop_on_signal`).
        .disable_signals()
        .listen(listener)
        .map_err(|source| Self::bind_error(settings, source))?
        .run();
        let mut addr = settings.listen;
        addr.set_port(port);
        Ok(Self {
            port,
            listening: (addr, settings.data_dir.clone()),
            server,
            store,
            metrics,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the separate metrics listener, when configured.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    fn metrics_server(
        addr: std::net::SocketAddr,
        store: &web::Data<Store>,
        source: &web::Data<MetricsSource>,
    ) -> Result<(u16, Server), StartupError> {
        let bind_error = |source| StartupError::Bind { addr, source };
        let listener = TcpListener::bind(addr).map_err(bind_error)?;
        let port = listener.local_addr().map_err(bind_error)?.port();
        let (store, source) = (store.clone(), source.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(store.clone())
                .app_data(source.clone())
                .service(get("/metrics", crate::metrics::endpoint))
                .default_service(web::to(no_route))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .map_err(bind_error)?
        .run();
        tracing::info!(%addr, port, "metrics listening (no auth)");
        Ok((port, server))
    }

    /// Stops the server gracefully on SIGINT or SIGTERM (see
    /// [`stop_on_signal`]); without it, only the process's end stops it.
    /// The signals are taken over here, before the server first runs.
    pub fn stop_on_signals(&self) -> std::io::Result<()> {
        let signals = [
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
            signal(SignalKind::quit())?,
        ];
        actix_web::rt::spawn(stop_on_signal(self.server.handle(), signals));
        Ok(())
    }

    /// Serves until stopped, then commits what is queued. Says it is up
    /// only here, after [`Application::stop_on_signals`] when that is used:
    /// a supervisor that signals as soon as it reads the line gets a
    /// graceful stop.
    ///
    /// When the store stops on a storage failure, the server stops too and
    /// this returns an error: only a restart recovers the store (from its
    /// journal), and a supervisor restarts a process that exits, not one
    /// that answers 503 for ever.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (addr, data_dir) = &self.listening;
        tracing::info!(%addr, data_dir = %data_dir.display(), "klaxon listening");
        let metrics = self.metrics.map(|(_, server)| {
            let handle = server.handle();
            actix_web::rt::spawn(server);
            handle
        });
        let watch = tokio::spawn({
            let (store, server) = (self.store.clone(), self.server.handle());
            async move {
                store.until_stopped().await;
                tracing::error!("the store has stopped: klaxon exits, and a restart recovers it from its journal");
                server.stop(true).await;
            }
        });
        let result = self.server.await;
        watch.abort();
        if let Some(handle) = metrics {
            handle.stop(false).await;
        }
        let store = self.store;
        let stopped = store.stopped();
        let _ = actix_web::rt::task::spawn_blocking(move || store.close()).await;
        tracing::info!("klaxon stopped");
        match result {
            Ok(()) if stopped => Err(std::io::Error::other(
                "the store stopped on a storage failure; a restart recovers it from its journal",
            )),
            result => result,
        }
    }

    fn bind_error(settings: &Settings, source: std::io::Error) -> StartupError {
        StartupError::Bind {
            addr: settings.listen,
            source,
        }
    }
}

/// Every route of the service.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(get("/healthz", health::healthz))
        .service(get("/readyz", health::readyz))
        .service(post("/slack/outgoing", slack::outgoing::receive))
        .service(post("/slack/events", slack::events::receive))
        .configure(api::routes);
}

/// A resource read with GET, and HEAD (the same answer without its body,
/// as HTTP asks); other methods answer 405.
pub fn get<F, Args>(path: &str, handler: F) -> Resource
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    let get_or_head = actix_guard::Any(actix_guard::Get()).or(actix_guard::Head());
    resource(path, "GET, HEAD").route(web::route().guard(get_or_head).to(handler))
}

/// A resource that takes POST only; other methods answer 405.
pub fn post<F, Args>(path: &str, handler: F) -> Resource
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    resource(path, "POST").route(web::post().to(handler))
}

/// A resource whose other methods answer 405, in the JSON error shape and
/// with `Allow`.
fn resource(path: &str, allow: &'static str) -> Resource {
    web::resource(path).default_service(web::to(move || async move {
        Err::<HttpResponse, _>(ApiError::MethodNotAllowed(allow))
    }))
}

async fn no_route(_: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("route"))
}

fn cors(origins: &[String]) -> Cors {
    origins
        .iter()
        .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin))
        .allowed_methods(["GET", "POST"])
        .allowed_headers(["authorization", "content-type", "if-none-match"])
        .expose_headers(["etag", "retry-after"])
        .max_age(600)
}

fn warn_of_closed_surfaces(settings: &Settings, tokens: &ApiTokens) {
    if settings.signing_secrets.is_none() {
        tracing::warn!("SLACK_SIGNING_SECRET is not set: /slack/events rejects every request");
    }
    if settings.verification_tokens.is_none() {
        tracing::warn!(
            "SLACK_VERIFICATION_TOKEN is not set: /slack/outgoing rejects every request"
        );
    }
    if tokens.is_closed() {
        tracing::warn!(
            "the alert API is closed: set KLAXON_READ_TOKENS and/or KLAXON_WRITE_TOKENS to open it"
        );
    }
}

/// SIGINT (Ctrl-C) and SIGTERM both stop the server gracefully: it stops
/// accepting, and the requests in flight get `KLAXON_SHUTDOWN_GRACE_SECS` to
/// finish. A second signal ends the process at once, with exit code 1: every
/// change answered 2xx is already in the journal, so nothing answered is
/// lost (actix-server's forced stop waited out the grace period all the same).
/// SIGQUIT ends it at once too (actix-server's own handling made it a
/// forced stop that still closed the store; the journal makes that unneeded).
async fn stop_on_signal(server: actix_web::dev::ServerHandle, mut signals: [Signal; 3]) {
    let mut graceful = true;
    loop {
        let [int, term, quit] = &mut signals;
        let name = tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
            _ = quit.recv() => {
                graceful = false;
                "SIGQUIT"
            }
        };
        if graceful {
            tracing::info!(signal = name, "stopping: finishing the requests in flight");
            actix_web::rt::spawn(server.clone().stop(true));
            graceful = false;
        } else {
            tracing::warn!(
                signal = name,
                "stopping now: dropping the requests in flight"
            );
            std::process::exit(1);
        }
    }
}
