//! The DynamoDB store: one item per circuit, read with `GetItem`, written with a conditional
//! `PutItem`. IAM needs `dynamodb:GetItem` and `dynamodb:PutItem` only.
//!
//! Items written by the Powertools breaker (no `version`; `opened_at` in seconds) are read as
//! the state they hold and replaced by the next write, so switching a live table over keeps
//! open circuits open. The client belongs to one process: a forked child builds its own (new
//! connections, a new credentials cache) on first use.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use aws_smithy_runtime_api::client::http::{HttpConnectorSettings, SharedHttpConnector};
use fleetbreaker_core::{
    CircuitState, ConfigError, CorruptItem, Record, StoreError, Stored, StoredKind, SwapResult,
    WindowCounts, WindowDelta,
};

use crate::Error;
use crate::fork::{ForkLocal, Scope};
use crate::stores::{Counters, Store, StoreFuture, StoreStats};
use crate::util::lock;

/// The item's attribute names, in one place: each is the [`Record`] field of the same name.
/// Numbers are `N`, text is `S`.
#[allow(missing_docs)]
pub mod attr {
    pub const STATE: &str = "state";
    pub const VERSION: &str = "version";
    pub const OPENED_AT_MS: &str = "opened_at_ms";
    pub const OPEN_UNTIL_MS: &str = "open_until_ms";
    pub const TRIPS: &str = "trips";
    pub const PROBE_OWNER: &str = "probe_owner";
    pub const PROBE_LEASE_UNTIL_MS: &str = "probe_lease_until_ms";
    pub const PROBE_SUCCESSES: &str = "probe_successes";
    pub const CLOSED_AT_MS: &str = "closed_at_ms";
    pub const FAILURE_COUNT: &str = "failure_count";
    pub const UPDATED_AT_MS: &str = "updated_at_ms";
    pub const UPDATED_BY: &str = "updated_by";
    pub const OVERRIDE_REASON: &str = "override_reason";
    pub const OVERRIDE_UNTIL_MS: &str = "override_until_ms";
    /// The TTL attribute, in epoch **seconds** as DynamoDB's TTL requires.
    pub const EXPIRATION: &str = "expiration";

    /// A window shard's counters (numbers, added to with `ADD`) and the set of environments
    /// that reported trouble (a string set).
    pub mod window {
        pub const CALLS: &str = "calls";
        pub const FAILURES: &str = "failures";
        pub const SLOW_CALLS: &str = "slow_calls";
        pub const ENVIRONMENTS: &str = "environments";
    }

    /// The attributes of an item written by the Powertools breaker, read when `version` is
    /// absent. Times are epoch seconds.
    pub mod powertools {
        pub const OPENED_AT: &str = "opened_at";
        pub const HALF_OPEN_OWNER: &str = "half_open_owner";
        pub const PROBE_LEASE_EXPIRY: &str = "probe_lease_expiry";
    }
}

/// The partition key value in composite mode when none is given: the Powertools breaker's,
/// so that a single-table design keeps its circuits when it moves over.
pub fn default_static_pk_value() -> String {
    format!(
        "circuit_breaker#{}",
        std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default()
    )
}

/// Checks a table name by DynamoDB's rules: 3 to 255 characters of `A-Z a-z 0-9 _ - .`.
pub fn validate_table_name(name: &str) -> Result<(), ConfigError> {
    let refuse = |message: String| ConfigError {
        field: "table_name".into(),
        message,
    };
    if !(3..=255).contains(&name.len()) {
        return Err(refuse(format!(
            "must be 3 to 255 characters long, got {} ({name:?})",
            name.len()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(refuse(format!(
            "may contain only letters, digits, '_', '-' and '.', got {c:?} in {name:?}"
        )));
    }
    Ok(())
}

/// Where and how circuits are stored in DynamoDB.
#[derive(Clone, Debug)]
pub struct DynamoDbConfig {
    /// The table, by DynamoDB's naming rules (3 to 255 letters, digits, `_`, `-`, `.`).
    pub table_name: String,
    /// The partition key attribute (type `S`). Default `id`.
    pub key_attr: String,
    /// Composite mode: the sort key attribute (type `S`) holds the circuit name, and the
    /// partition key holds `static_pk_value`. For single-table designs.
    pub sort_key_attr: Option<String>,
    /// The partition key value in composite mode. Default
    /// `circuit_breaker#<AWS_LAMBDA_FUNCTION_NAME>` (the Powertools breaker's), which gives
    /// each function its own circuits; set a fixed value to share circuits across functions.
    /// Ignored (with a warning) without `sort_key_attr`, as the Powertools breaker does.
    pub static_pk_value: Option<String>,
    /// Default: the standard AWS environment (`AWS_REGION`, profile, ...).
    pub region: Option<String>,
    /// Default: the standard AWS environment (`AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL`).
    pub endpoint_url: Option<String>,
    /// Strongly consistent reads (twice the read cost). The compare-and-swap keeps the breaker
    /// correct with eventually consistent reads, the default.
    pub consistent_read: bool,
    /// The deadline of every store call, SDK retries included. Default 1 s.
    pub store_timeout: Duration,
}

impl DynamoDbConfig {
    /// The defaults for `table_name`: key `id`, eventually consistent reads, a 1 s deadline,
    /// the region and endpoint of the standard AWS environment.
    pub fn new(table_name: impl Into<String>) -> DynamoDbConfig {
        DynamoDbConfig {
            table_name: table_name.into(),
            key_attr: "id".into(),
            sort_key_attr: None,
            static_pk_value: None,
            region: None,
            endpoint_url: None,
            consistent_read: false,
            store_timeout: Duration::from_secs(1),
        }
    }

    /// The partition key value in effect: `static_pk_value`, or its default, in composite
    /// mode; `None` with a simple key.
    pub fn partition_value(&self) -> Option<String> {
        self.sort_key_attr.as_ref()?;
        Some(
            self.static_pk_value
                .clone()
                .unwrap_or_else(default_static_pk_value),
        )
    }

    /// Checks every field; the error names the first one that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let refuse = |field: &str, message: String| ConfigError {
            field: field.into(),
            message,
        };
        validate_table_name(&self.table_name)?;
        if self.key_attr.is_empty() {
            return Err(refuse("key_attr", "must not be empty".into()));
        }
        match &self.sort_key_attr {
            Some(sk) if sk == &self.key_attr => {
                return Err(refuse(
                    "sort_key_attr",
                    format!("key_attr [{sk}] and sort_key_attr [{sk}] cannot be the same!"),
                ));
            }
            Some(sk) if sk.is_empty() => {
                return Err(refuse("sort_key_attr", "must not be empty".into()));
            }
            _ => {}
        }
        if self.store_timeout.is_zero() || self.store_timeout > Duration::from_secs(60) {
            return Err(refuse(
                "store_timeout",
                format!(
                    "must be between 1 ms and 60 s, got {:?}",
                    self.store_timeout
                ),
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
enum Key {
    Simple {
        attr: String,
    },
    Composite {
        pk_attr: String,
        pk_value: String,
        sk_attr: String,
    },
}

impl Key {
    fn of(&self, circuit: &str) -> HashMap<String, AttributeValue> {
        let s = |v: &str| AttributeValue::S(v.to_string());
        match self {
            Key::Simple { attr } => HashMap::from([(attr.clone(), s(circuit))]),
            Key::Composite {
                pk_attr,
                pk_value,
                sk_attr,
            } => HashMap::from([
                (pk_attr.clone(), s(pk_value)),
                (sk_attr.clone(), s(circuit)),
            ]),
        }
    }

    fn partition_attr(&self) -> &str {
        match self {
            Key::Simple { attr } => attr,
            Key::Composite { pk_attr, .. } => pk_attr,
        }
    }

    fn name_attr(&self) -> &str {
        match self {
            Key::Simple { attr } => attr,
            Key::Composite { sk_attr, .. } => sk_attr,
        }
    }

    fn describe(&self) -> String {
        match self {
            Key::Simple { attr } => format!("partition key '{attr}' (S)"),
            Key::Composite {
                pk_attr,
                pk_value,
                sk_attr,
            } => format!("partition key '{pk_attr}' (S) = '{pk_value}', sort key '{sk_attr}' (S)"),
        }
    }
}

/// The HTTPS client every store builds: hyper with rustls on ring, the system's root
/// certificates. Chosen explicitly rather than by the SDK's default feature, which brings aws-lc
/// (see `Cargo.toml`). The roots are read and the connector made when a request first needs one.
pub fn https_client() -> SharedHttpClient {
    SharedHttpClient::new(Https::default())
}

/// The SDK's HTTPS client with this crate's TLS (see [`rustls_ring`], [`tls_context`]).
fn sdk_https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(rustls_ring())
        .tls_context(tls_context())
        .build_https()
}

/// rustls with ring (see `Cargo.toml`).
fn rustls_ring() -> aws_smithy_http_client::tls::Provider {
    use aws_smithy_http_client::tls;
    tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring)
}

/// Trusting the system's CA bundle file (see [`system_bundle`]), else the SDK's default roots.
fn tls_context() -> aws_smithy_http_client::tls::TlsContext {
    SYSTEM_ROOTS
        .get_or_init(system_roots)
        .clone()
        .unwrap_or_default()
}

/// An HTTPS client that reads the roots and makes its connector when a request first needs it,
/// or takes the one made ahead for it (see [`Ahead`]). The SDK's own reads the roots when it is
/// made, and makes a connector and drops it when a client is built from a configuration that
/// carries it (the client's checks, meant to load the platform's roots early): with roots given
/// as PEM, that parses the whole bundle once more for nothing, on a cold start's way to its
/// first call.
#[derive(Debug, Default)]
struct Https {
    sdk: OnceLock<SharedHttpClient>,
    ahead: Option<Arc<Ahead>>,
}

impl aws_sdk_dynamodb::config::HttpClient for Https {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &aws_sdk_dynamodb::config::RuntimeComponents,
    ) -> SharedHttpConnector {
        if let Some(ahead) = &self.ahead {
            if ahead.fits(settings) {
                return ahead.connector();
            }
            ahead
                .misses
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        (self.sdk.get_or_init(sdk_https_client)).http_connector(settings, components)
    }

    fn connector_metadata(
        &self,
    ) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        // What the SDK's own client says of itself (its user agent carries it).
        Some(
            aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata::new(
                "hyper",
                Some("1.x".into()),
            ),
        )
    }
}

/// A store's connector, made on a thread of its own while the SDK configuration loads (reading
/// the roots and parsing them for TLS take about a millisecond of a cold start, which the first
/// call no longer waits for), for the settings the store's requests use. It is made as the SDK
/// makes its own: the same TLS context, the same pool and the default sleep and time source.
#[derive(Debug)]
struct Ahead {
    connect_timeout: Duration,
    connector: OnceLock<SharedHttpConnector>,
    /// Requests it did not fit, which made a connector of their own.
    misses: std::sync::atomic::AtomicU32,
}

impl Ahead {
    fn new(config: &DynamoDbConfig) -> Ahead {
        Ahead {
            connect_timeout: attempt_timeout(config),
            connector: OnceLock::new(),
            misses: Default::default(),
        }
    }

    /// Whether a request with `settings` can use it (the SDK's own cache key).
    fn fits(&self, settings: &HttpConnectorSettings) -> bool {
        settings.connect_timeout() == Some(self.connect_timeout)
            && settings.read_timeout().is_none()
    }

    /// The connector, made now if it is not yet (or once another thread has made it).
    fn connector(&self) -> SharedHttpConnector {
        let made = self.connector.get_or_init(|| {
            let settings = HttpConnectorSettings::builder()
                .connect_timeout(self.connect_timeout)
                .build();
            SharedHttpConnector::new(
                aws_smithy_http_client::Connector::builder()
                    .connector_settings(settings)
                    .tls_provider(rustls_ring())
                    .tls_context(tls_context())
                    .build(),
            )
        });
        made.clone()
    }
}

/// How long one attempt of a store's request may take: two fit in its deadline.
fn attempt_timeout(config: &DynamoDbConfig) -> Duration {
    (config.store_timeout / 2).max(Duration::from_millis(1))
}

/// The TLS context trusting the system's CA bundle file, made once per process (see
/// [`system_bundle`]); None leaves the roots to the SDK (its default context).
static SYSTEM_ROOTS: std::sync::OnceLock<Option<aws_smithy_http_client::tls::TlsContext>> =
    std::sync::OnceLock::new();

fn system_roots() -> Option<aws_smithy_http_client::tls::TlsContext> {
    use aws_smithy_http_client::tls;
    tls::TlsContext::builder()
        .with_trust_store(tls::TrustStore::empty().with_pem_certificate(system_bundle()?))
        .build()
        .ok()
}

/// The root certificates from the system's CA bundle file alone, or None to let the SDK load
/// them its own way. The SDK's way also reads every file of the certificate directories, which
/// hold the same certificates again: 4 ms of a cold start here, against 1 ms for the bundle.
/// None when `SSL_CERT_FILE` or `SSL_CERT_DIR` is set (the SDK honours them), when there is no
/// bundle file, and when a certificate in it does not parse: the SDK skips those, while a trust
/// store given as PEM must parse whole.
fn system_bundle() -> Option<Vec<u8>> {
    if openssl_probe::has_ssl_cert_env_vars() {
        return None;
    }
    let pem = std::fs::read(openssl_probe::probe().cert_file?).ok()?;
    (whole_bundle_roots(&pem) > 0).then_some(pem)
}

/// How many roots the PEM bundle `pem` holds if the SDK takes every certificate in it as a
/// trust anchor, else 0: given a certificate it cannot read, the SDK panics.
///
/// Read by stricter rules than the SDK's reader (certificate sections only, exact markers, pure
/// base64, padding only at the end), so a bundle that passes here is one the SDK reads to the
/// same certificates, and one these rules refuse is only left to the SDK's own loading. The
/// decoder is a fast one: over a system bundle this takes about 0.26 ms, the SDK's reader 0.5.
fn whole_bundle_roots(pem: &[u8]) -> usize {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let Ok(text) = std::str::from_utf8(pem) else {
        return 0;
    };
    let mut roots = rustls::RootCertStore::empty();
    let mut section: Option<String> = None;
    for line in text.lines() {
        // The SDK's reader also ends a line at a lone carriage return (which `lines` keeps).
        if line.contains('\r') {
            return 0;
        }
        match section.as_mut() {
            None if line == BEGIN => section = Some(String::new()),
            // Text between certificates is skipped by both readers; a marker is not.
            None if line.starts_with("-----") => return 0,
            None => {}
            Some(body) if line == END => {
                let unpadded = body.trim_end_matches('=');
                if unpadded.contains('=') || body.len() - unpadded.len() > 2 {
                    return 0;
                }
                let Ok(der) = aws_smithy_types::base64::decode(&*body) else {
                    return 0;
                };
                if roots.add(der.into()).is_err() {
                    return 0;
                }
                section = None;
            }
            // The decoder refuses any character that is not base64 (spaces too).
            Some(body) => body.push_str(line),
        }
    }
    if section.is_some() { 0 } else { roots.len() }
}

/// The DynamoDB store.
pub struct DynamoDbStore {
    connection: Arc<Connection>,
    key: Key,
    counters: Counters,
}

/// A store's SDK configuration and this process's client. The configuration is given
/// (`with_client`), or loaded in the background from [`DynamoDbStore::connect`] on, with the
/// client's first-use work done before any call needs it (see [`Connection::warm_up`] and
/// [`Ahead`]): reading the profile files and parsing the TLS roots, milliseconds of a cold start
/// that the caller no longer waits for. The first store call awaits what is left.
struct Connection {
    /// Set once, when loaded: a value, never a load in progress, so a forked child reads it.
    loaded: OnceLock<Loaded>,
    /// This process's load; a child forked while its parent was loading loads again.
    loading: ForkLocal<Loading>,
    /// The client of this process; a forked child builds another from the configuration.
    client: ForkLocal<Client>,
    /// The connector of this process's client, made ahead of its first request.
    ahead: ForkLocal<Arc<Ahead>>,
    /// A store call has asked for the client: a warm-up would only compete with it.
    called: std::sync::atomic::AtomicBool,
    config: DynamoDbConfig,
}

/// One process's load of the SDK configuration.
#[derive(Default)]
struct Loading {
    done: tokio::sync::OnceCell<()>,
    /// A load [`DynamoDbStore::connect`] started ahead of any call, for the first call to
    /// await (rather than start another).
    started: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

struct Loaded {
    base: aws_sdk_dynamodb::Config,
    region: String,
}

impl Loaded {
    fn of(base: aws_sdk_dynamodb::Config) -> Loaded {
        let region = base
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "(no region configured)".into());
        Loaded { base, region }
    }
}

impl Connection {
    /// The SDK configuration, once loaded; `None` if this load failed (the next call tries
    /// again).
    async fn loaded(self: &Arc<Self>) -> Option<&Loaded> {
        if let Some(loaded) = self.loaded.get() {
            return Some(loaded);
        }
        let loading = self.loading.get_or_init(Loading::default);
        let _ = loading
            .done
            .get_or_try_init(|| async {
                let started = lock(&loading.started).take();
                let _ = started.unwrap_or_else(|| self.start_load()).await;
                self.loaded.get().map(drop).ok_or(())
            })
            .await;
        self.loaded.get()
    }

    /// Starts loading the SDK configuration on a blocking-pool thread of the library's
    /// runtime: the SDK reads the profile files with blocking calls, and a caller's thread (a
    /// first call polled in place) must only ever wait for it, within its deadline.
    fn start_load(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        let runtime = crate::bridge::io_runtime().handle().clone();
        crate::bridge::io_runtime().spawn_blocking(move || runtime.block_on(this.load()))
    }

    fn ahead(&self) -> Arc<Ahead> {
        (self.ahead)
            .get_or_init(|| Arc::new(Ahead::new(&self.config)))
            .clone()
    }

    /// Makes this process's connector on a blocking-pool thread, beside the load.
    fn make_connector_ahead(&self) {
        let ahead = self.ahead();
        let runtime = crate::bridge::io_runtime().handle().clone();
        drop(crate::bridge::io_runtime().spawn_blocking(move || {
            runtime.block_on(async {
                // Not cut in half by a fork (the roots' one-time initialisation).
                let _held_off = crate::fork::hold_off_forks().await;
                drop(ahead.connector());
            })
        }));
    }

    async fn load(&self) {
        // Not cut in half by a fork: the child would wait forever on the locks of the one-time
        // initialisations inside (TLS roots, the SDK's defaults).
        let _held_off = crate::fork::hold_off_forks().await;
        // `connect` validated the configuration, so there is a loader.
        if let Ok(loader) = DynamoDbStore::sdk_config_loader(&self.config) {
            let sdk_config = loader.load().await;
            let _ = self
                .loaded
                .set(Loaded::of(aws_sdk_dynamodb::Config::from(&sdk_config)));
        }
    }

    /// The client of this process, once the configuration has loaded.
    async fn client(self: &Arc<Self>) -> Option<&Client> {
        if let Some(client) = self.client.get() {
            return Some(client);
        }
        let loaded = self.loaded().await?;
        // Building the client runs one-time initialisations inside the SDK (its endpoint
        // rules among them): a child forked halfway through one would wait on it forever.
        let _held_off = crate::fork::hold_off_forks().await;
        Some(self.client_of(loaded))
    }

    fn client_of(&self, loaded: &Loaded) -> &Client {
        self.client.get_or_init(|| {
            // A new identity cache and a new HTTP client: a forked child leaves the parent's
            // connections and any lock a vanished thread held with the parent. (A client given
            // to `with_client` with an HTTP client of its own gets the default one in a child.)
            Client::from_conf(
                loaded
                    .base
                    .to_builder()
                    .identity_cache(aws_sdk_dynamodb::config::IdentityCache::lazy().build())
                    .http_client(SharedHttpClient::new(Https {
                        sdk: OnceLock::new(),
                        ahead: Some(self.ahead()),
                    }))
                    .build(),
            )
        })
    }

    /// Takes this process's client through one `GetItem` up to the point of sending, and stops
    /// it there (nothing is sent): the credentials, the endpoint and the signing are made ready
    /// for the first call (the HTTPS connector is made apart, see [`Ahead`]). Skipped when a
    /// store call came before the configuration loaded: that call does the same work at once,
    /// and a warm-up would only compete with it.
    async fn warm_up(self: &Arc<Self>, table: &str, key: HashMap<String, AttributeValue>) {
        let Some(client) = self.client().await else {
            return;
        };
        if self.called.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let _held_off = crate::fork::hold_off_forks().await;
        let _stopped = client
            .get_item()
            .table_name(table)
            .set_key(Some(key))
            .customize()
            .interceptor(StopBeforeSending)
            .send()
            .await;
    }
}

/// See [`Connection::warm_up`].
#[derive(Debug)]
struct StopBeforeSending;

impl aws_sdk_dynamodb::config::Intercept for StopBeforeSending {
    fn name(&self) -> &'static str {
        "fleetbreaker::StopBeforeSending"
    }

    fn read_before_transmit(
        &self,
        _: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        use aws_sdk_dynamodb::config::HttpClient;
        // The connector the orchestrator asks for next, with the same settings (its cache key).
        if let (Some(http), Some(timeouts)) = (
            components.http_client(),
            cfg.load::<aws_sdk_dynamodb::config::timeout::TimeoutConfig>(),
        ) {
            let mut settings = HttpConnectorSettings::builder();
            settings.set_connect_timeout(timeouts.connect_timeout());
            settings.set_read_timeout(timeouts.read_timeout());
            drop(http.http_connector(&settings.build(), components));
        }
        Err("stopped before sending (a warm-up)".into())
    }
}

impl std::fmt::Debug for DynamoDbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoDbStore")
            .field("table", &self.config().table_name)
            .field("region", &self.region())
            .field("key", &self.key)
            .finish()
    }
}

impl DynamoDbStore {
    /// A store whose client comes from the standard AWS environment (credentials chain,
    /// region, `AWS_ENDPOINT_URL_DYNAMODB`), overridden by `config`, with the store's deadline
    /// and a bounded retry that fits inside it. Returns once `config` is checked: the SDK
    /// configuration loads in the background, on the library's runtime, and the first store
    /// call waits for what is left of it.
    pub async fn connect(config: DynamoDbConfig) -> Result<DynamoDbStore, Error> {
        config.validate()?;
        let store = DynamoDbStore::new(None, config);
        // Loaded and warmed up in the background; a call that comes first waits for the load.
        // The load starts here, not from the warm-up's task: that would first wait for a
        // worker thread of a runtime that may have only just started.
        let (connection, table) = (store.connection.clone(), store.config().table_name.clone());
        let loading = connection.loading.get_or_init(Loading::default);
        *lock(&loading.started) = Some(connection.start_load());
        connection.make_connector_ahead();
        let key = store.key.of("fleetbreaker-warm-up");
        crate::bridge::spawn_detached(async move { connection.warm_up(&table, key).await });
        Ok(store)
    }

    /// The SDK configuration [`DynamoDbStore::connect`] uses, to customise before loading
    /// (credentials, HTTP client, ...): `with_client(Client::new(&loader.load().await), config)`.
    pub fn sdk_config_loader(config: &DynamoDbConfig) -> Result<aws_config::ConfigLoader, Error> {
        config.validate()?;
        let attempt = attempt_timeout(config);
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(https_client())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_timeout(config.store_timeout)
                    .operation_attempt_timeout(attempt)
                    .connect_timeout(attempt)
                    .build(),
            )
            // Two attempts with a short backoff fit in the deadline; the breaker itself backs
            // off from a failing store (store_retry_after), so SDK retries must not pile up.
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(2)
                    .with_initial_backoff(Duration::from_millis(10))
                    .with_max_backoff(Duration::from_millis(50)),
            );
        if let Some(region) = &config.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(endpoint) = &config.endpoint_url {
            loader = loader.endpoint_url(endpoint.clone());
        }
        Ok(loader)
    }

    /// Uses an existing client (its own timeouts and retries apply, bounded by
    /// `store_timeout`). A forked child builds a client of its own from this one's
    /// configuration, with a new connection pool and a new credentials cache.
    pub fn with_client(client: Client, config: DynamoDbConfig) -> Result<DynamoDbStore, Error> {
        config.validate()?;
        Ok(DynamoDbStore::new(Some(client), config))
    }

    fn new(client: Option<Client>, config: DynamoDbConfig) -> DynamoDbStore {
        if config.static_pk_value.is_some() && config.sort_key_attr.is_none() {
            log::warn!(
                target: "fleetbreaker",
                "static_pk_value is ignored unless sort_key_attr is also set"
            );
        }
        let key = match (config.sort_key_attr.clone(), config.partition_value()) {
            (Some(sk_attr), Some(pk_value)) => Key::Composite {
                pk_attr: config.key_attr.clone(),
                pk_value,
                sk_attr,
            },
            _ => Key::Simple {
                attr: config.key_attr.clone(),
            },
        };
        crate::fork::watch();
        let this_process = ForkLocal::new(Scope::Identity);
        let loaded = OnceLock::new();
        if let Some(client) = client {
            let _ = loaded.set(Loaded::of(client.config().clone()));
            this_process.get_or_init(|| client);
        }
        DynamoDbStore {
            counters: Counters::default(),
            key,
            connection: Arc::new(Connection {
                loaded,
                loading: ForkLocal::new(Scope::Process),
                client: this_process,
                ahead: ForkLocal::new(Scope::Identity),
                called: std::sync::atomic::AtomicBool::new(false),
                config,
            }),
        }
    }

    /// The client of this process. Before the SDK configuration has loaded (see
    /// [`DynamoDbStore::connect`]) this waits for it; async code gets it through a store call.
    pub fn client(&self) -> &Client {
        let connection = &self.connection;
        if let Some(client) = connection.client.get() {
            return client;
        }
        if connection.loaded.get().is_none() {
            // On a thread of its own: this one may be a runtime's.
            std::thread::scope(|s| {
                s.spawn(|| {
                    let _ = crate::bridge::io_runtime().block_on(connection.loaded());
                });
            });
        }
        connection.client_of(
            connection
                .loaded
                .get()
                .expect("the SDK configuration was loaded"),
        )
    }

    /// The client of this process, once the SDK configuration has loaded.
    async fn process_client(&self) -> Result<&Client, StoreError> {
        self.connection
            .called
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.connection.client().await.ok_or_else(|| {
            StoreError::Unavailable("the AWS SDK configuration could not be loaded".into())
        })
    }

    /// The settings this store was made with.
    fn config(&self) -> &DynamoDbConfig {
        &self.connection.config
    }

    /// The region in effect, once known (for messages).
    fn region(&self) -> &str {
        self.connection
            .loaded
            .get()
            .map_or("(not loaded yet)", |loaded| loaded.region.as_str())
    }

    /// The partition key value in composite mode, `None` with a simple key.
    pub fn partition_value(&self) -> Option<&str> {
        match &self.key {
            Key::Simple { .. } => None,
            Key::Composite { pk_value, .. } => Some(pk_value),
        }
    }

    /// Deletes the item of `circuit` (for operators and tests; a missing item is a closed
    /// circuit). Needs `dynamodb:DeleteItem`, which the breaker itself never uses.
    pub async fn remove(&self, circuit: &str) -> Result<(), Error> {
        self.admin_client()
            .await?
            .delete_item()
            .table_name(&self.config().table_name)
            .set_key(Some(self.key.of(circuit)))
            .send()
            .await
            .map(drop)
            .map_err(|e| self.admin_error("DeleteItem", e))
    }

    /// The table this store uses.
    pub fn table_name(&self) -> &str {
        &self.config().table_name
    }

    /// What this store has done so far.
    pub fn stats(&self) -> StoreStats {
        self.counters.stats()
    }

    /// Creates the table (on-demand capacity) with this store's key schema, waits until it is
    /// active, and enables TTL on `expiration`. For development, tests and demos; production
    /// tables belong in infrastructure code (see the README's CloudFormation snippet).
    pub async fn create_table(&self) -> Result<(), Error> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
            TimeToLiveSpecification,
        };
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| Error::Component(e.to_string()))
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(|e| Error::Component(e.to_string()))
        };
        let admin = self.admin_client().await?;
        let mut request = admin
            .create_table()
            .table_name(&self.config().table_name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr(self.key.partition_attr())?)
            .key_schema(key(self.key.partition_attr(), KeyType::Hash)?);
        if let Key::Composite { sk_attr, .. } = &self.key {
            request = request
                .attribute_definitions(attr(sk_attr)?)
                .key_schema(key(sk_attr, KeyType::Range)?);
        }
        request
            .send()
            .await
            .map_err(|e| self.admin_error("CreateTable", e))?;
        for _ in 0..100 {
            let described = admin
                .describe_table()
                .table_name(&self.config().table_name)
                .send()
                .await
                .map_err(|e| self.admin_error("DescribeTable", e))?;
            let active = described
                .table()
                .and_then(|t| t.table_status())
                .is_some_and(|s| s.as_str() == "ACTIVE");
            if active {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let ttl = admin
            .update_time_to_live()
            .table_name(&self.config().table_name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(attr::EXPIRATION)
                    .build()
                    .map_err(|e| Error::Component(e.to_string()))?,
            )
            .send()
            .await;
        match ttl {
            Ok(_) => Ok(()),
            // A local DynamoDB-compatible server without TTL (dynalite): the table works, its
            // items just stay until deleted.
            Err(e) if e.code() == Some("UnknownOperationException") => {
                log::warn!(
                    target: "fleetbreaker",
                    "table '{}' was created, but this server does not support TTL; items are not expired",
                    self.config().table_name
                );
                Ok(())
            }
            Err(e) => Err(self.admin_error("UpdateTimeToLive", e)),
        }
    }

    /// Every circuit in the table (a `Scan`, for operators: the breaker itself never scans),
    /// each with its record or what is wrong with its item.
    pub async fn list(&self) -> Result<Vec<(String, Result<Record, CorruptItem>)>, Error> {
        let mut circuits = Vec::new();
        let mut pages = self
            .admin_client()
            .await?
            .scan()
            .table_name(&self.config().table_name)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| self.admin_error("Scan", e))?;
            if let Key::Composite {
                pk_attr, pk_value, ..
            } = &self.key
                && item.get(pk_attr).and_then(|v| v.as_s().ok()) != Some(pk_value)
            {
                continue;
            }
            let Some(name) = item.get(self.key.name_attr()).and_then(|v| v.as_s().ok()) else {
                continue;
            };
            if name.contains(WINDOW_SEPARATOR) {
                continue;
            }
            circuits.push((name.clone(), item_to_record(&item)));
        }
        circuits.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(circuits)
    }

    /// A client for table administration, which is on no breaker's path: it waits up to a
    /// minute rather than `store_timeout` (a local server can take seconds over its first
    /// request, and a table scan is not a point read).
    async fn admin_client(&self) -> Result<Client, Error> {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .operation_timeout(Duration::from_secs(60))
            .operation_attempt_timeout(Duration::from_secs(20))
            .connect_timeout(Duration::from_secs(5))
            .build();
        Ok(Client::from_conf(
            self.process_client()
                .await?
                .config()
                .to_builder()
                .timeout_config(timeouts)
                .build(),
        ))
    }

    fn admin_error<E: ProvideErrorMetadata + std::fmt::Debug>(
        &self,
        operation: &str,
        e: SdkError<E, HttpResponse>,
    ) -> Error {
        Error::Store(self.map_error(operation, e))
    }

    /// Maps an SDK error to the breaker's kinds. Refusals that configuration must fix carry
    /// the table, region and key schema, so the one log line says what to check.
    fn map_error<E: ProvideErrorMetadata + std::fmt::Debug>(
        &self,
        operation: &str,
        e: SdkError<E, HttpResponse>,
    ) -> StoreError {
        self.counters.error();
        match &e {
            SdkError::TimeoutError(_) => StoreError::Timeout(format!(
                "{operation} did not answer within {:?}",
                self.config().store_timeout
            )),
            SdkError::DispatchFailure(d) if d.is_timeout() => {
                StoreError::Timeout(format!("{operation} timed out connecting"))
            }
            SdkError::DispatchFailure(d) => {
                StoreError::Unavailable(format!("{operation} could not reach DynamoDB: {d:?}"))
            }
            SdkError::ResponseError(r) => {
                StoreError::Unavailable(format!("{operation}: unreadable response: {r:?}"))
            }
            SdkError::ServiceError(service) => {
                let err = service.err();
                let code = err.code().unwrap_or("");
                let message = err.message().unwrap_or("");
                let status = service.raw().status().as_u16();
                match code {
                    "ThrottlingException"
                    | "ProvisionedThroughputExceededException"
                    | "RequestLimitExceeded"
                    | "TransactionConflictException" => {
                        StoreError::Throttled(format!("{operation}: {code}: {message}"))
                    }
                    "ResourceNotFoundException"
                    | "AccessDeniedException"
                    | "ValidationException"
                    | "UnrecognizedClientException"
                    | "MissingAuthenticationTokenException"
                    | "InvalidSignatureException" => StoreError::Misconfigured(format!(
                        "{operation} on table '{}' in region '{}' with {} was refused: {code}: \
                         {message}",
                        self.config().table_name,
                        self.region(),
                        self.key.describe()
                    )),
                    _ if status >= 500 || code == "InternalServerError" => StoreError::Unavailable(
                        format!("{operation}: {code} (HTTP {status}): {message}"),
                    ),
                    _ => StoreError::Misconfigured(format!(
                        "{operation} on table '{}' in region '{}' failed: {code} (HTTP {status}): \
                         {message}",
                        self.config().table_name,
                        self.region()
                    )),
                }
            }
            other => StoreError::Unavailable(format!("{operation}: {other:?}")),
        }
    }

    /// Bounds `call` by the store's deadline, whatever the SDK does.
    async fn bounded<T>(
        &self,
        operation: &str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.config().store_timeout, call).await {
            Ok(result) => result,
            Err(_) => {
                self.counters.error();
                Err(StoreError::Timeout(format!(
                    "{operation} did not answer within {:?}",
                    self.config().store_timeout
                )))
            }
        }
    }

    async fn load_item(&self, circuit: &str) -> Result<Option<Record>, StoreError> {
        let out = self
            .process_client()
            .await?
            .get_item()
            .table_name(&self.config().table_name)
            .set_key(Some(self.key.of(circuit)))
            .consistent_read(self.config().consistent_read)
            .send()
            .await
            .map_err(|e| self.map_error("GetItem", e))?;
        self.counters.read();
        match out.item() {
            None => Ok(None),
            Some(item) => item_to_record(item).map(Some).map_err(StoreError::Corrupt),
        }
    }

    async fn add_to_window_item(
        &self,
        key: &str,
        delta: &WindowDelta,
        expires_at_ms: u64,
    ) -> Result<(), StoreError> {
        use attr::window as w;
        let n = |v: u64| AttributeValue::N(v.to_string());
        let mut update = String::from(
            "SET #ttl = if_not_exists(#ttl, :ttl) ADD #calls :calls, #failures :failures, #slow :slow",
        );
        let mut request = self
            .process_client()
            .await?
            .update_item()
            .table_name(&self.config().table_name)
            .set_key(Some(self.key.of(key)))
            .expression_attribute_names("#ttl", attr::EXPIRATION)
            .expression_attribute_names("#calls", w::CALLS)
            .expression_attribute_names("#failures", w::FAILURES)
            .expression_attribute_names("#slow", w::SLOW_CALLS)
            .expression_attribute_values(":ttl", n(expires_at_ms.div_ceil(1000)))
            .expression_attribute_values(":calls", n(delta.calls))
            .expression_attribute_values(":failures", n(delta.failures))
            .expression_attribute_values(":slow", n(delta.slow_calls));
        if let Some(environment) = &delta.environment {
            update.push_str(", #envs :envs");
            request = request
                .expression_attribute_names("#envs", w::ENVIRONMENTS)
                .expression_attribute_values(
                    ":envs",
                    AttributeValue::Ss(vec![environment.clone()]),
                );
        }
        request
            .update_expression(update)
            .send()
            .await
            .map_err(|e| self.map_error("UpdateItem", e))?;
        self.counters.window_add();
        Ok(())
    }

    async fn read_window_items(
        &self,
        circuit: &str,
        starts: &[u64],
        shards: u32,
    ) -> Result<Vec<WindowCounts>, StoreError> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let client = self.process_client().await?;
        let name_attr = self.key.name_attr().to_string();
        let mut keys: Vec<HashMap<String, AttributeValue>> = starts
            .iter()
            .flat_map(|&start| (0..shards).map(move |shard| (start, shard)))
            .map(|(start, shard)| self.key.of(&window_key(circuit, start, shard)))
            .collect();
        let mut totals: HashMap<u64, WindowCounts> = HashMap::new();
        // BatchGetItem takes 100 keys at a time, and may leave some for another request.
        while !keys.is_empty() {
            let batch: Vec<_> = keys.drain(..keys.len().min(100)).collect();
            let request = KeysAndAttributes::builder()
                .set_keys(Some(batch))
                .consistent_read(self.config().consistent_read)
                .build()
                .map_err(|e| StoreError::Misconfigured(format!("BatchGetItem: {e}")))?;
            let out = client
                .batch_get_item()
                .request_items(&self.config().table_name, request)
                .send()
                .await
                .map_err(|e| self.map_error("BatchGetItem", e))?;
            for item in out
                .responses()
                .and_then(|r| r.get(&self.config().table_name))
                .into_iter()
                .flatten()
            {
                let start = item
                    .get(&name_attr)
                    .and_then(|v| v.as_s().ok())
                    .and_then(|key| window_start_of(key));
                if let Some(start) = start {
                    add_window_item(totals.entry(start).or_default(), item);
                }
            }
            if let Some(left) = out
                .unprocessed_keys()
                .and_then(|u| u.get(&self.config().table_name))
            {
                keys.extend(left.keys().iter().cloned());
            }
        }
        self.counters.read();
        Ok(starts
            .iter()
            .map(|start| totals.remove(start).unwrap_or_default())
            .collect())
    }

    async fn swap_item(
        &self,
        circuit: &str,
        expected_version: Option<u64>,
        next: &Record,
    ) -> Result<SwapResult, StoreError> {
        let mut item = record_to_item(next);
        item.extend(self.key.of(circuit));
        let condition = match expected_version {
            Some(v) => Expected::Version(AttributeValue::N(v.to_string())),
            None => Expected::NoVersion,
        };
        match self.put_if(&item, condition).await? {
            Put::Written => Ok(SwapResult::Written),
            Put::Refused(current) => {
                let current = match current {
                    Some(current) => Some(current),
                    // Without ALL_OLD (some DynamoDB-compatible servers) the conflict comes
                    // back bare: read the item, strongly, as ALL_OLD would have given it.
                    None => self.read_item(circuit, true).await?,
                };
                // The SDK retried a write whose first attempt had in fact succeeded (it
                // answered too late): the item refused now is the one this very swap wrote.
                if current.as_ref() == Some(&item) {
                    self.counters.write();
                    return Ok(SwapResult::Written);
                }
                // A version that is a number but not one of ours (-1, 1.5, 2^64): swap against
                // exactly that number, so that one writer replaces the item.
                if expected_version.is_none()
                    && let Some(raw) = current.as_ref().and_then(unreadable_version)
                {
                    return match self.put_if(&item, Expected::Version(raw)).await? {
                        Put::Written => Ok(SwapResult::Written),
                        Put::Refused(current) => {
                            self.counters.conflict();
                            Ok(SwapResult::Conflict(
                                current.and_then(|i| item_to_record(&i).ok()),
                            ))
                        }
                    };
                }
                self.counters.conflict();
                Ok(SwapResult::Conflict(
                    current.and_then(|i| item_to_record(&i).ok()),
                ))
            }
        }
    }

    /// A conditional `PutItem` of `item`.
    async fn put_if(
        &self,
        item: &HashMap<String, AttributeValue>,
        expected: Expected,
    ) -> Result<Put, StoreError> {
        let mut request = self
            .process_client()
            .await?
            .put_item()
            .table_name(&self.config().table_name)
            .set_item(Some(item.clone()))
            .expression_attribute_names("#version", attr::VERSION)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        request = match expected {
            // Only an item with exactly this version: an absent item is a conflict, as in
            // every store (it was deleted, by TTL or by hand, since it was read).
            Expected::Version(v) => request
                .condition_expression("#version = :expected")
                .expression_attribute_values(":expected", v),
            // No item, or one whose version the breaker cannot read (a corrupt item, or one
            // written by the Powertools breaker).
            Expected::NoVersion => request
                .condition_expression(
                    "attribute_not_exists(#pk) OR attribute_not_exists(#version) \
                     OR NOT attribute_type(#version, :number)",
                )
                .expression_attribute_names("#pk", self.key.partition_attr())
                .expression_attribute_values(":number", AttributeValue::S("N".into())),
        };
        match request.send().await {
            Ok(_) => {
                self.counters.write();
                Ok(Put::Written)
            }
            Err(SdkError::ServiceError(service))
                if matches!(
                    service.err(),
                    PutItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                let current = match service.err() {
                    PutItemError::ConditionalCheckFailedException(c) => c.item().cloned(),
                    _ => None,
                };
                Ok(Put::Refused(current))
            }
            Err(e) => Err(self.map_error("PutItem", e)),
        }
    }

    /// The raw item of `circuit`, for a conflict that came back without it.
    async fn read_item(
        &self,
        circuit: &str,
        consistent: bool,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let out = self
            .process_client()
            .await?
            .get_item()
            .table_name(&self.config().table_name)
            .set_key(Some(self.key.of(circuit)))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(|e| self.map_error("GetItem", e))?;
        self.counters.read();
        Ok(out.item().cloned())
    }
}

/// What a conditional write expects of the stored item.
enum Expected {
    Version(AttributeValue),
    NoVersion,
}

enum Put {
    Written,
    /// The condition failed; the stored item, when the server returned it.
    Refused(Option<HashMap<String, AttributeValue>>),
}

/// A `version` that is a number but not one the breaker can read.
fn unreadable_version(item: &HashMap<String, AttributeValue>) -> Option<AttributeValue> {
    match item.get(attr::VERSION) {
        Some(AttributeValue::N(n)) if n.parse::<u64>().is_err() => {
            Some(AttributeValue::N(n.clone()))
        }
        _ => None,
    }
}

impl Store for DynamoDbStore {
    fn load<'a>(&'a self, circuit: &'a str) -> StoreFuture<'a, Option<Record>> {
        Box::pin(self.bounded("GetItem", self.load_item(circuit)))
    }

    fn swap<'a>(
        &'a self,
        circuit: &'a str,
        expected_version: Option<u64>,
        next: &'a Record,
    ) -> StoreFuture<'a, SwapResult> {
        Box::pin(self.bounded("PutItem", self.swap_item(circuit, expected_version, next)))
    }

    fn add_to_window<'a>(
        &'a self,
        circuit: &'a str,
        window_start_ms: u64,
        shard: u32,
        delta: &'a WindowDelta,
        expires_at_ms: u64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let key = window_key(circuit, window_start_ms, shard);
            self.bounded(
                "UpdateItem",
                self.add_to_window_item(&key, delta, expires_at_ms),
            )
            .await
        })
    }

    fn read_windows<'a>(
        &'a self,
        circuit: &'a str,
        window_starts_ms: &'a [u64],
        shards: u32,
    ) -> StoreFuture<'a, Vec<WindowCounts>> {
        Box::pin(self.bounded(
            "BatchGetItem",
            self.read_window_items(circuit, window_starts_ms, shards),
        ))
    }
}

/// Separates a window shard's key from its circuit's name: a control character, which no
/// circuit name contains, so no circuit's key is ever a window's.
const WINDOW_SEPARATOR: char = '\u{1f}';

/// The key value of shard `shard` of `circuit`'s window that starts at `start_ms`, in the
/// attribute that holds circuit names.
fn window_key(circuit: &str, start_ms: u64, shard: u32) -> String {
    format!(
        "{circuit}{WINDOW_SEPARATOR}window{WINDOW_SEPARATOR}{start_ms}{WINDOW_SEPARATOR}{shard}"
    )
}

/// The window start in a window shard's key.
fn window_start_of(key: &str) -> Option<u64> {
    let mut parts = key.rsplit(WINDOW_SEPARATOR);
    let _shard = parts.next()?;
    parts.next()?.parse().ok()
}

/// Adds one shard item's counters to `total`; a counter of another type counts as zero (the
/// window is advice: a stray item must not stop a decision).
fn add_window_item(total: &mut WindowCounts, item: &HashMap<String, AttributeValue>) {
    use attr::window as w;
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let environments = item
        .get(w::ENVIRONMENTS)
        .and_then(|v| v.as_ss().ok())
        .cloned()
        .unwrap_or_default();
    total.add(
        number(w::CALLS),
        number(w::FAILURES),
        number(w::SLOW_CALLS),
        environments,
    );
}

/// The item attribute that holds record field `field`: the field's own name, except for the
/// TTL.
fn attribute_of(field: &'static str) -> &'static str {
    if field == "expires_at_ms" {
        attr::EXPIRATION
    } else {
        field
    }
}

/// The item for `r`, without its key. Absent optional fields are left out.
pub fn record_to_item(r: &Record) -> HashMap<String, AttributeValue> {
    r.to_stored()
        .into_iter()
        .filter_map(|(field, value)| {
            let value = match value? {
                // DynamoDB's TTL takes epoch seconds.
                Stored::Number(ms) if field == "expires_at_ms" => {
                    AttributeValue::N(ms.div_ceil(1000).to_string())
                }
                Stored::Number(n) => AttributeValue::N(n.to_string()),
                Stored::Text(t) => AttributeValue::S(t),
            };
            Some((attribute_of(field).to_string(), value))
        })
        .collect()
}

/// Reads an item back; anything that is not a valid record is reported with what is wrong
/// and whatever version could still be read.
pub fn item_to_record(item: &HashMap<String, AttributeValue>) -> Result<Record, CorruptItem> {
    let version = match item.get(attr::VERSION) {
        Some(AttributeValue::N(n)) => n.parse::<u64>().ok(),
        _ => None,
    };
    let corrupt = |detail: String| CorruptItem { detail, version };
    let record = Record::from_stored(|field, kind| {
        let value = match (item.get(attribute_of(field)), kind) {
            (None, _) => return Ok(None),
            (Some(AttributeValue::N(n)), StoredKind::Number) => n
                .parse::<u64>()
                .map_err(|_| format!("is not a whole number: {n:?}"))?,
            (Some(AttributeValue::S(t)), StoredKind::Text) => {
                return Ok(Some(Stored::Text(t.clone())));
            }
            (Some(other), StoredKind::Number) => {
                return Err(format!(
                    "should be a number (N), found {}",
                    type_name(other)
                ));
            }
            (Some(other), StoredKind::Text) => {
                return Err(format!(
                    "should be a string (S), found {}",
                    type_name(other)
                ));
            }
        };
        Ok(Some(Stored::Number(if field == "expires_at_ms" {
            value.saturating_mul(1000)
        } else {
            value
        })))
    })
    .map_err(|e| {
        corrupt(format!(
            "attribute '{}' {}",
            attribute_of(e.field),
            e.problem
        ))
    })?;
    if !item.contains_key(attr::VERSION) {
        return powertools_item(item, record.state)
            .ok_or_else(|| corrupt(format!("attribute '{}' is missing", attr::VERSION)));
    }
    Ok(record)
}

/// An item the Powertools breaker wrote: `state` (CLOSED, OPEN or HALF_OPEN), `failure_count`,
/// and, when set, `opened_at`, `half_open_owner`, `probe_lease_expiry` (epoch seconds) and
/// `expiration`. Read as the state it holds, with version 0: the next write swaps against "no
/// version" and upgrades it. The break ends `recovery_timeout` after `opened_at` (the record
/// carries no end of its own).
fn powertools_item(item: &HashMap<String, AttributeValue>, state: CircuitState) -> Option<Record> {
    use attr::powertools as pt;
    if !matches!(
        state,
        CircuitState::Closed | CircuitState::Open | CircuitState::HalfOpen
    ) {
        return None;
    }
    let number = |name: &str| -> Result<Option<u64>, ()> {
        match item.get(name) {
            None => Ok(None),
            // Powertools writes whole seconds; a stray fraction is not worth refusing.
            Some(AttributeValue::N(n)) => n
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .map(|v| Some(v as u64))
                .ok_or(()),
            Some(_) => Err(()),
        }
    };
    let seconds = |name: &str| number(name).map(|v| v.map(|s| s.saturating_mul(1000)));
    let opened_at_ms = seconds(pt::OPENED_AT).ok()?;
    let probe_owner = match item.get(pt::HALF_OPEN_OWNER) {
        None => None,
        Some(AttributeValue::S(s)) => Some(s.clone()),
        Some(_) => return None,
    };
    let mut record = Record::absent(0);
    record.state = state;
    record.opened_at_ms = opened_at_ms;
    record.trips = u32::from(state != CircuitState::Closed);
    record.probe_owner = probe_owner;
    record.probe_lease_until_ms = seconds(pt::PROBE_LEASE_EXPIRY).ok()?;
    record.failure_count = number(attr::FAILURE_COUNT)
        .ok()?
        .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX));
    record.updated_by = "powertools".into();
    record.expires_at_ms = seconds(attr::EXPIRATION).ok()?.unwrap_or(0);
    Some(record)
}

fn type_name(v: &AttributeValue) -> &'static str {
    match v {
        AttributeValue::S(_) => "S",
        AttributeValue::N(_) => "N",
        AttributeValue::B(_) => "B",
        AttributeValue::Bool(_) => "BOOL",
        AttributeValue::Null(_) => "NULL",
        AttributeValue::L(_) => "L",
        AttributeValue::M(_) => "M",
        AttributeValue::Ss(_) => "SS",
        AttributeValue::Ns(_) => "NS",
        AttributeValue::Bs(_) => "BS",
        _ => "an unknown type",
    }
}

#[cfg(test)]
mod tests {
    use super::{Https, whole_bundle_roots};
    use fleetbreaker_core::testing::{Rng, seed};

    /// Two public root CAs (ISRG Root X1 and X2), as a system bundle holds them.
    const TWO_ROOTS: &[u8] = include_bytes!("../../tests/data/two-roots.pem");

    /// What the SDK makes of a trust store given as PEM (`TlsContext::rustls_root_certs`): the
    /// certificates, or None where it would panic.
    fn sdk_reads(pem: &[u8]) -> Option<usize> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .ok()?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs {
            roots.add(cert).ok()?;
        }
        Some(roots.len())
    }

    #[test]
    fn a_bundle_of_valid_roots_is_used_whole() {
        assert_eq!(2, whole_bundle_roots(TWO_ROOTS));
        let crlf = String::from_utf8_lossy(TWO_ROOTS).replace('\n', "\r\n");
        assert_eq!(2, whole_bundle_roots(crlf.as_bytes()));
        let commented = String::from_utf8_lossy(TWO_ROOTS).replace(
            "-----BEGIN",
            "# a root, as Amazon Linux's bundle names each\n-----BEGIN",
        );
        assert_eq!(2, whole_bundle_roots(commented.as_bytes()));
    }

    #[test]
    fn this_systems_bundle_takes_the_fast_check() {
        let Some(file) = openssl_probe::probe().cert_file else {
            eprintln!("no system bundle here: nothing to check");
            return;
        };
        let pem = std::fs::read(&file).unwrap();
        let roots = sdk_reads(&pem).expect("the SDK reads this system's bundle");
        assert_eq!(
            whole_bundle_roots(&pem),
            roots,
            "{}: refused, so the SDK would load the roots its slower way",
            file.display()
        );
    }

    #[test]
    fn a_bundle_with_a_certificate_that_does_not_parse_is_left_to_the_sdk() {
        let mut pem = TWO_ROOTS.to_vec();
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        assert!(
            whole_bundle_roots(&pem) == 0,
            "a trust store given as PEM would panic on it"
        );
        let mut broken_base64 = TWO_ROOTS.to_vec();
        broken_base64
            .extend_from_slice(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n");
        assert_eq!(0, whole_bundle_roots(&broken_base64));
    }

    /// The SDK's HTTP client makes (and drops) a connector when a client is built from a
    /// configuration that carries it, and a connector trusting a PEM that does not parse
    /// panics: ours makes none until a request needs one.
    #[test]
    fn building_a_client_makes_no_connector() {
        use aws_smithy_http_client::tls;
        let unreadable = tls::TrustStore::empty().with_pem_certificate(
            &b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"[..],
        );
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .tls_context(
                tls::TlsContext::builder()
                    .with_trust_store(unreadable)
                    .build()
                    .unwrap(),
            )
            .build_https();
        let config = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .http_client(aws_sdk_dynamodb::config::SharedHttpClient::new(Https {
                sdk: http.into(),
                ahead: None,
            }))
            .build();
        let _client = aws_sdk_dynamodb::Client::new(&config);
    }

    #[test]
    fn an_empty_bundle_is_left_to_the_sdk() {
        assert_eq!(0, whole_bundle_roots(b""));
        assert_eq!(0, whole_bundle_roots(b"not a certificate\n"));
    }

    /// Random damage to a bundle: whatever the fast check passes, the SDK reads without a
    /// panic, to as many roots.
    #[test]
    fn a_damaged_bundle_that_passes_is_one_the_sdk_reads() {
        let seed = seed();
        println!("seed {seed} (FLEETBREAKER_SEED={seed} replays it)");
        let mut rng = Rng::new(seed);
        let pieces: [&[u8]; 12] = [
            b"A", b"=", b"==", b"\r", b"\n", b"\r\n", b" ", b"-----", b"!", b"/", b"\t", b"\xff",
        ];
        let (mut passed, mut refused) = (0, 0);
        for _ in 0..20_000 {
            let mut pem = TWO_ROOTS.to_vec();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(pem.len() + 1);
                match rng.below(3) {
                    0 => drop(pem.splice(at..at, pieces[rng.below(pieces.len())].iter().copied())),
                    1 if at < pem.len() => drop(pem.remove(at)),
                    _ if at < pem.len() => pem[at] = b"AZaz09+/="[rng.below(9)],
                    _ => {}
                }
            }
            let roots = whole_bundle_roots(&pem);
            if roots > 0 {
                passed += 1;
                assert_eq!(
                    sdk_reads(&pem),
                    Some(roots),
                    "seed {seed}: passed, but the SDK reads otherwise:\n{}",
                    String::from_utf8_lossy(&pem)
                );
            } else {
                refused += 1;
            }
        }
        println!("{passed} damaged bundles passed, {refused} were left to the SDK");
        assert!(
            passed > 0 && refused > 0,
            "the damage never tested both sides"
        );
    }
}

#[cfg(test)]
mod connection_tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Instant;

    /// Runs the test `name` of this module again in a child process with `env` added, and fails
    /// if it fails or takes over 30 s. The SDK's default chain reads credentials and profile
    /// files from the environment, which a test must not change in its own process.
    fn in_child(name: &str, env: &[(&str, &str)]) {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                // This module's path without the crate's name: the test's name, whatever the
                // module is moved to.
                &format!("{}::{name}", module_path!().split_once("::").unwrap().1),
                "--exact",
                "--nocapture",
            ])
            .env("FLEETBREAKER_CONNECTION_TEST_CHILD", "1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!("{name} hung");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn in_the_child() -> bool {
        std::env::var_os("FLEETBREAKER_CONNECTION_TEST_CHILD").is_some()
    }

    fn config_for(endpoint: &str) -> DynamoDbConfig {
        let mut config = DynamoDbConfig::new("circuits");
        config.region = Some("us-east-1".into());
        config.endpoint_url = Some(endpoint.into());
        config.store_timeout = Duration::from_millis(300);
        config
    }

    /// A listener nobody else knows (it sees every connection the store makes and never
    /// answers), its endpoint, and a runtime for the test's store calls.
    fn silent_endpoint() -> (TcpListener, String, tokio::runtime::Runtime) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        (listener, endpoint, runtime)
    }

    #[test]
    fn the_warm_up_sends_nothing_and_a_call_after_it_does() {
        if !in_the_child() {
            return in_child(
                "the_warm_up_sends_nothing_and_a_call_after_it_does",
                &[("AWS_CONFIG_FILE", "/nonexistent")],
            );
        }
        let (listener, endpoint, runtime) = silent_endpoint();
        runtime.block_on(async {
            let store = DynamoDbStore::connect(config_for(&endpoint)).await.unwrap();
            let key = store.key.of("payments");
            // Awaited here rather than in the background, so that it has surely run.
            store
                .connection
                .warm_up(&store.config().table_name, key)
                .await;
            assert!(
                listener.accept().is_err(),
                "the warm-up must not send a request"
            );
            // A real call does connect (no answer comes: it times out, as a store fault).
            let read = store.load("payments").await;
            assert!(matches!(read, Err(StoreError::Timeout(_))), "{read:?}");
            assert!(listener.accept().is_ok(), "the call connected");
        });
    }

    #[test]
    fn the_first_call_takes_the_connector_made_ahead() {
        if !in_the_child() {
            return in_child(
                "the_first_call_takes_the_connector_made_ahead",
                &[("AWS_CONFIG_FILE", "/nonexistent")],
            );
        }
        let (listener, endpoint, runtime) = silent_endpoint();
        runtime.block_on(async {
            let store = DynamoDbStore::connect(config_for(&endpoint)).await.unwrap();
            let ahead = store.connection.ahead();
            let deadline = Instant::now() + Duration::from_secs(10);
            while ahead.connector.get().is_none() {
                assert!(Instant::now() < deadline, "no connector was made ahead");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let read = store.load("payments").await;
            assert!(matches!(read, Err(StoreError::Timeout(_))), "{read:?}");
            assert!(listener.accept().is_ok(), "the call connected");
            assert_eq!(
                ahead.misses.load(std::sync::atomic::Ordering::Relaxed),
                0,
                "the call made a connector of its own"
            );
        });
    }

    #[test]
    fn a_call_polled_in_place_while_the_profile_file_blocks_times_out_and_does_not_hang() {
        let dir = std::env::temp_dir().join(format!("fleetbreaker-fifo-{}", std::process::id()));
        let fifo = dir.join("config");
        if !in_the_child() {
            std::fs::create_dir_all(&dir).unwrap();
            let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            // SAFETY: a valid, NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
            in_child(
                "a_call_polled_in_place_while_the_profile_file_blocks_times_out_and_does_not_hang",
                &[("AWS_CONFIG_FILE", fifo.to_str().unwrap())],
            );
            let _ = std::fs::remove_dir_all(&dir);
            return;
        }
        // Reading a FIFO blocks until a writer comes. The store is made without the background
        // load of `connect`, so the call below is the first to ask for the configuration, on
        // this thread: it must wait for the load elsewhere, not run it here.
        let fifo = std::path::PathBuf::from(std::env::var("AWS_CONFIG_FILE").unwrap());
        let store = DynamoDbStore::new(None, config_for("http://127.0.0.1:9"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let read = runtime.block_on(store.load("payments"));
        assert!(matches!(read, Err(StoreError::Timeout(_))), "{read:?}");
        // Let the blocked load finish, so the process exits cleanly.
        std::fs::write(&fifo, "[default]\n").unwrap();
    }
}
