//! Assembling the server: router, middleware, workers, and `launch`, which tests call with a
//! listener on port 0 to run the real server in-process.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::bootstrap::{self, FirstAdmin};
use crate::config::Config;
use crate::error::ApiError;
use crate::keys::Keys;
use crate::metrics::RequestLabels;
use crate::openapi::ApiDoc;
use crate::state::AppState;
use crate::trace::REQUEST_ID;
use crate::{console, http, open_files, trace, transport, workers};

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    /// Where `/metrics` is served apart (`metrics_listen`).
    pub metrics_addr: Option<SocketAddr>,
    pub state: AppState,
    /// Set on the first start of an empty database.
    pub first_admin: Option<FirstAdmin>,
    server: JoinHandle<std::io::Result<()>>,
    workers: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops at once, as a crash would: no request or delivery in flight finishes or records
    /// anything, and what the database holds is all that is left.
    pub fn abort(self) {
        self.server.abort();
        for worker in self.workers {
            worker.abort();
        }
    }

    /// Waits until shutdown has drained requests and stopped the workers.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.server.await??;
        for worker in self.workers {
            worker.await?;
        }
        self.state.store.close().await;
        Ok(())
    }
}

/// Opens the database (migrating it), initialises it on first start, starts the workers and
/// serves on `listener` until `shutdown` is cancelled.
pub async fn launch(
    mut config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    // The address peers reach this instance at is the one bound (`listen` may say port 0).
    config.listen = listener.local_addr()?;
    // Bound first, so an address in use fails the start before anything runs.
    let metrics_listener = match config.metrics_listen {
        Some(address) => Some(TcpListener::bind(address).await?),
        None => None,
    };
    crate::private_files::prepare_data_dir(
        &config.data_dir,
        &config.database_url(),
        &config.data_dir.join(crate::keys::KEY_FILE),
    )?;
    let keys = Keys::load(
        config.server_key.as_ref().map(|s| s.expose()),
        config.checkpoint_key.as_ref().map(|s| s.expose()),
        &config.data_dir,
    )?;
    let options = spog_store::StoreOptions {
        max_connections: config.database_max_connections,
        ..Default::default()
    };
    let store = spog_store::Store::connect(&config.database_url(), &options).await?;
    store.migrate().await?;
    let bound = crate::secrets::bind_existing(&store, &keys).await?;
    if bound != crate::secrets::Bound::default() {
        tracing::info!(
            ?bound,
            "sealed and bound the secrets of rows written before"
        );
    }
    let first_admin = bootstrap::first_start(&store, &config).await?;
    let state = AppState::new(config, store, keys)?;
    state.storage.probe().await.map_err(anyhow::Error::msg)?;
    crate::backup::verify_if_restored(&state).await?;
    let mut workers = vec![
        workers::audit_linker::spawn(&state, shutdown.clone()),
        workers::checkpoints::spawn(&state, shutdown.clone()),
        workers::audit_streams::spawn(&state, shutdown.clone()),
        workers::liveness::spawn(&state, shutdown.clone()),
        workers::alert_evaluation::spawn(&state, shutdown.clone()),
        workers::no_data::spawn(&state, shutdown.clone()),
        workers::silences::spawn(&state, shutdown.clone()),
        workers::delivery::spawn(&state, shutdown.clone()),
        workers::delivery_cleanup::spawn(&state, shutdown.clone()),
        workers::metrics_pruning::spawn(&state, shutdown.clone()),
        workers::recordings::spawn_flush(&state, shutdown.clone()),
        workers::recordings::spawn_idle(&state, shutdown.clone()),
        workers::recording_upload::spawn(&state, shutdown.clone()),
        workers::recording_retention::spawn(&state, shutdown.clone()),
        workers::retention::spawn(&state, shutdown.clone()),
        workers::recording_text::spawn(&state, shutdown.clone()),
    ];
    workers.extend(workers::cluster::spawn(&state, shutdown.clone()));
    workers.extend(state.bus.spawn_listener(shutdown.clone()));
    workers.push(state.bus.spawn_coalescer(shutdown.clone()));
    workers.push(state.bus.spawn_rechecker(shutdown.clone()));
    let (stopped, stopping) = (state.clone(), shutdown.clone());
    workers.push(tokio::spawn(async move {
        stopping.cancelled().await;
        stopped.bus.hub.close_all();
        stopped.bus.agents.close_all();
        // What recorders hold reaches the disk; their streams close.
        stopped.recorders.close_all().await;
    }));
    let app = router(state.clone());
    let addr = listener.local_addr()?;
    let limits = transport_limits(&state.config);
    let metrics_addr = match metrics_listener {
        Some(metrics) => {
            let metrics_addr = metrics.local_addr()?;
            let app = http::system::metrics_router(state.clone());
            // A scraper or two: a handful of connections is plenty.
            let limits = transport::Limits {
                max_connections: 16,
                ..limits
            };
            workers.push(tokio::spawn(
                transport::serve(metrics, app, limits, shutdown.clone()).map(|_| ()),
            ));
            tracing::info!(addr = %metrics_addr, "serving /metrics");
            Some(metrics_addr)
        }
        None => None,
    };
    let server = tokio::spawn(transport::serve(listener, app, limits, shutdown));
    tracing::info!(%addr, instance = %state.instance_id, backend = state.store.backend().name(),
        max_connections = limits.max_connections, open_files_limit = open_files::limit(),
        "spog is serving");
    Ok(Running {
        addr,
        metrics_addr,
        state,
        first_admin,
        server,
        workers,
    })
}

/// The transport's limits: the configured ones, with connections capped to what the
/// open-files limit allows.
fn transport_limits(config: &Config) -> transport::Limits {
    let budget = open_files::budget(
        open_files::limit(),
        config.max_connections,
        config.database_max_connections,
    );
    transport::Limits {
        header_read_timeout: config.header_read_timeout,
        max_connections: budget.connections,
        write_timeout: config.write_timeout,
    }
}

/// The API with its OpenAPI document.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(http::api())
        .split_for_parts()
}

pub fn router(state: AppState) -> Router {
    let (api, openapi) = api();
    let openapi_json = serde_json::to_string(&openapi).expect("the OpenAPI document serialises");
    let api = api
        .merge(http::ws::router())
        .route(
            "/openapi.json",
            axum::routing::get(move || async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    openapi_json.clone(),
                )
            }),
        )
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                axum::Json(ApiError::BadRequest("method not allowed".into()).body()),
            )
        });
    let config = &state.config;
    Router::new()
        .nest("/api/v1", api)
        .merge(crate::terminal::open::internal_router())
        .merge(crate::recordings::remote::internal_router())
        .merge(http::system::root_router())
        .merge(console::router())
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::client::identify,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            config.request_timeout,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal(anyhow::anyhow!("handler panicked")).into_response()
        }))
        // The span only: `observe` writes the request's line, `ApiError` logs its failure.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(trace::request_span)
                .on_request(())
                .on_response(())
                .on_body_chunk(())
                .on_eos(())
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

/// One log line (in the request's span, which names it) and one metric sample per request.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    tracing::info!(
        target: "spog::request",
        status,
        elapsed_ms = elapsed.as_secs_f64() * 1000.0,
    );
    state.metrics.observe_request(
        RequestLabels {
            method: method.to_string(),
            route,
            status,
        },
        elapsed,
    );
    if !response
        .headers()
        .contains_key(axum::http::header::CACHE_CONTROL)
        && path.starts_with("/api/")
    {
        response.headers_mut().insert(
            axum::http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
    }
    response
}
