use std::ops::Deref;
use std::sync::Arc;

use spog_core::Timestamp;
use spog_store::Store;
use spog_store::audit::GroupCommit;

use crate::auth::AuthCache;
use crate::auth::throttle::LoginThrottle;
use crate::config::Config;
use crate::delivery::Engine;
use crate::hub::bus::Bus;
use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::recordings::Recorders;
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
    pub auth_cache: AuthCache,
    /// The outbound delivery engine's settings and transports.
    pub engine: Engine,
    /// Session recordings being written on this instance.
    pub recorders: Recorders,
    /// Audit entries ingested from other components, recorded in groups.
    pub audit_ingest: GroupCommit,
}

impl AppState {
    pub fn new(config: Config, store: Store, keys: Keys) -> anyhow::Result<Self> {
        let engine = Engine::new(&config)?;
        let auth_cache = AuthCache::new(config.auth_cache_ttl);
        let recorders = Recorders::new(&config.data_dir);
        Ok(Self(Arc::new(App {
            config,
            bus: Bus::new(store.clone()),
            audit_ingest: GroupCommit::start(&store),
            store,
            keys,
            instance_id: uuid::Uuid::now_v7().to_string(),
            started_at: Timestamp::now(),
            metrics: Metrics::new(),
            workers: Workers::default(),
            login_throttle: LoginThrottle::default(),
            auth_cache,
            recorders,
            engine,
        })))
    }
}

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}
