use std::ops::Deref;
use std::sync::Arc;

use spog_core::Timestamp;
use spog_store::Store;
use spog_store::audit::GroupCommit;

use crate::events::GroupPublisher;

use crate::agents::enroll::EnrollLimiter;
use crate::auth::AuthCache;
use crate::auth::password::Hashing;
use crate::auth::throttle::LoginThrottle;
use crate::blocking::Blocking;
use crate::config::Config;
use crate::delivery::Engine;
use crate::http::downloads::Downloads;
use crate::hub::bus::Bus;
use crate::hub::sockets::Sockets;
use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::open_files;
use crate::recordings::Recorders;
use crate::recordings::storage::Storage;
use crate::workers::Workers;

/// Everything a request handler or worker needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<App>);

pub struct App {
    pub config: Config,
    pub store: Store,
    pub keys: Keys,
    /// Distinguishes instances sharing one database, in health output and logs.
    pub instance_id: String,
    pub started_at: Timestamp,
    pub metrics: Metrics,
    pub workers: Workers,
    /// Real-time events to browsers, across instances.
    pub bus: Bus,
    pub login_throttle: LoginThrottle,
    pub auth_cache: Arc<AuthCache>,
    /// The outbound delivery engine's settings and transports.
    pub engine: Engine,
    /// Session recordings being written on this instance.
    pub recorders: Recorders,
    /// Where sealed recordings are kept.
    pub storage: Storage,
    /// Audit entries ingested from other components, recorded in groups.
    pub audit_ingest: GroupCommit,
    /// Events published by other components, published in groups.
    pub event_publisher: GroupPublisher,
    /// The bounded share of the blocking pool for file work, encoding and hashing.
    pub blocking: Blocking,
    /// Streamed downloads in progress, per credential.
    pub downloads: Downloads,
    /// Password hashing, bounded to the cores.
    pub hashing: Hashing,
    /// Enrollment attempts per client address (SPEC 12.1).
    pub agent_enroll_limiter: EnrollLimiter,
    /// Requests to other instances of the cluster (SPEC 13.4).
    pub peers: reqwest::Client,
    /// The connections of this instance's syslog audit streams.
    pub syslog: crate::audit_streams::syslog::Connections,
    /// Single sign-on's guarded client and the identity providers' keys (SPEC 2.1).
    pub sso: crate::sso::Sso,
}

impl AppState {
    pub fn new(config: Config, store: Store, keys: Keys) -> anyhow::Result<Self> {
        let engine = Engine::new(&config)?;
        let sso = crate::sso::Sso::new(&config)?;
        let auth_cache = Arc::new(AuthCache::new(config.auth_cache_ttl));
        let blocking = Blocking::default();
        let budget = open_files::budget(
            open_files::limit(),
            config.max_connections,
            config.database_max_connections,
        );
        let recorders = Recorders::new(&config.data_dir, budget.recording_files, blocking.clone());
        let storage = Storage::open(&config).map_err(anyhow::Error::msg)?;
        let downloads = Downloads::new(config.max_downloads_per_caller);
        let sockets = Arc::new(Sockets::new(
            config.websocket_max_per_credential,
            config.websocket_max_per_account,
        ));
        let bus = Bus::new(store.clone(), sockets, auth_cache.clone());
        Ok(Self(Arc::new(App {
            config,
            audit_ingest: GroupCommit::start(&store),
            event_publisher: GroupPublisher::start(&store, &bus),
            bus,
            store,
            keys,
            instance_id: uuid::Uuid::now_v7().to_string(),
            started_at: Timestamp::now(),
            metrics: Metrics::new(),
            workers: Workers::default(),
            login_throttle: LoginThrottle::default(),
            auth_cache,
            recorders,
            storage,
            engine,
            blocking,
            downloads,
            hashing: Hashing::default(),
            agent_enroll_limiter: EnrollLimiter::default(),
            peers: peers()?,
            syslog: Default::default(),
            sso,
        })))
    }
}

/// Instances are reached at the addresses they registered, never redirected; one that stops
/// answering mid-read is given up on.
fn peers() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .read_timeout(std::time::Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}
