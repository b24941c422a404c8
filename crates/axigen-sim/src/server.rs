//! Starting and stopping simulated servers: one CLI listener and one
//! WebAdmin listener per server, both on their own ports.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::behavior::Behavior;
use crate::cli::Session;
use crate::data::{IndexedData, ServerData};
use crate::stats::{SimStats, StatsCounters};
use crate::tls::TlsIdentity;
use crate::webadmin;

/// Time allowed for a TLS handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// First byte of a TLS handshake record, used to tell HTTPS from HTTP when
/// one WebAdmin port serves both.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Protocols of the WebAdmin port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WebAdminMode {
    /// Plain HTTP.
    #[default]
    Http,
    /// HTTPS with the server's self-signed certificate.
    Https,
    /// HTTPS and plain HTTP on the same port, distinguished by the first
    /// byte the client sends.
    Both,
}

/// Credentials, transports and behavior of one simulated server.
#[derive(Clone)]
pub struct SimOptions {
    pub username: String,
    pub password: String,
    pub behavior: Behavior,
    /// The CLI speaks TLS from the first byte (implicit TLS).
    pub cli_tls: bool,
    pub webadmin: WebAdminMode,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            username: "admin".to_string(),
            password: "secret".to_string(),
            behavior: Behavior::default(),
            cli_tls: false,
            webadmin: WebAdminMode::Http,
        }
    }
}

impl fmt::Debug for SimOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimOptions")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("behavior", &self.behavior)
            .field("cli_tls", &self.cli_tls)
            .field("webadmin", &self.webadmin)
            .finish()
    }
}

/// State shared by a server's listeners and sessions.
pub(crate) struct Shared {
    pub(crate) username: String,
    pub(crate) password: String,
    data: RwLock<Arc<IndexedData>>,
    behavior: RwLock<Arc<Behavior>>,
    pub(crate) stats: StatsCounters,
    session_numbers: AtomicU64,
    /// How often `close_mid_reply` has fired since the behavior was set.
    pub(crate) mid_reply_fired: AtomicU64,
}

impl Shared {
    fn data(&self) -> Arc<IndexedData> {
        self.data.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn behavior(&self) -> Arc<Behavior> {
        self.behavior
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Entry point for starting simulated servers.
pub struct SimServer;

impl SimServer {
    /// Binds 127.0.0.1 on free ports for the CLI and for WebAdmin and
    /// serves until [`SimHandle::shutdown`] (or until the handle is
    /// dropped).
    ///
    /// # Errors
    ///
    /// Fails when the data is invalid (see [`ServerData::validate`]), a
    /// port cannot be bound or the certificate cannot be generated.
    pub async fn start(data: ServerData, options: SimOptions) -> std::io::Result<SimHandle> {
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        Self::start_on(loopback, loopback, data, options).await
    }

    /// Like [`SimServer::start`] on the given addresses (port 0 picks a free
    /// port).
    ///
    /// # Errors
    ///
    /// As for [`SimServer::start`].
    pub async fn start_on(
        cli_addr: SocketAddr,
        webadmin_addr: SocketAddr,
        data: ServerData,
        options: SimOptions,
    ) -> std::io::Result<SimHandle> {
        data.validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{e:#}")))?;
        let identity = TlsIdentity::generate()?;
        let cli_listener = TcpListener::bind(cli_addr).await?;
        let webadmin_listener = TcpListener::bind(webadmin_addr).await?;

        let shared = Arc::new(Shared {
            username: options.username,
            password: options.password,
            data: RwLock::new(Arc::new(IndexedData::new(data))),
            behavior: RwLock::new(Arc::new(options.behavior)),
            stats: StatsCounters::default(),
            session_numbers: AtomicU64::new(0),
            mid_reply_fired: AtomicU64::new(0),
        });
        let handle_cli_addr = cli_listener.local_addr()?;
        let handle_webadmin_addr = webadmin_listener.local_addr()?;
        let (shutdown, shutdown_receiver) = watch::channel(false);

        let cli_tls = options.cli_tls.then(|| identity.clone());
        let cli_task = tokio::spawn(accept_cli(
            cli_listener,
            shared.clone(),
            cli_tls,
            shutdown_receiver.clone(),
        ));
        let webadmin_task = tokio::spawn(accept_webadmin(
            webadmin_listener,
            shared.clone(),
            identity.clone(),
            options.webadmin,
            shutdown_receiver,
        ));
        tracing::info!(
            cli = %handle_cli_addr,
            webadmin = %handle_webadmin_addr,
            cli_tls = options.cli_tls,
            webadmin_mode = ?options.webadmin,
            "simulated axigen server started"
        );

        Ok(SimHandle {
            shared,
            cli_addr: handle_cli_addr,
            webadmin_addr: handle_webadmin_addr,
            cli_tls: options.cli_tls,
            webadmin_mode: options.webadmin,
            identity,
            shutdown,
            tasks: vec![cli_task, webadmin_task],
        })
    }
}

/// Starts `count` servers in this process, each with its own CLI and
/// WebAdmin ports, serving `data_for(index)` with the same options.
///
/// # Errors
///
/// Stops at the first server that fails to start; those already started
/// are shut down when their handles drop.
pub async fn start_many(
    count: usize,
    mut data_for: impl FnMut(usize) -> ServerData,
    options: &SimOptions,
) -> std::io::Result<Vec<SimHandle>> {
    let mut handles = Vec::with_capacity(count);
    for index in 0..count {
        handles.push(SimServer::start(data_for(index), options.clone()).await?);
    }
    Ok(handles)
}

/// A running simulated server.
pub struct SimHandle {
    shared: Arc<Shared>,
    cli_addr: SocketAddr,
    webadmin_addr: SocketAddr,
    cli_tls: bool,
    webadmin_mode: WebAdminMode,
    identity: TlsIdentity,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimHandle")
            .field("cli_addr", &self.cli_addr)
            .field("webadmin_addr", &self.webadmin_addr)
            .field("cli_tls", &self.cli_tls)
            .field("webadmin_mode", &self.webadmin_mode)
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    pub fn cli_addr(&self) -> SocketAddr {
        self.cli_addr
    }

    pub fn webadmin_addr(&self) -> SocketAddr {
        self.webadmin_addr
    }

    pub fn cli_tls(&self) -> bool {
        self.cli_tls
    }

    pub fn webadmin_mode(&self) -> WebAdminMode {
        self.webadmin_mode
    }

    pub fn username(&self) -> &str {
        &self.shared.username
    }

    /// Returns the self-signed certificate of the TLS listeners, DER-encoded.
    pub fn certificate_der(&self) -> &[u8] {
        &self.identity.certificate_der
    }

    /// Returns the same certificate, PEM-encoded.
    pub fn certificate_pem(&self) -> &str {
        &self.identity.certificate_pem
    }

    /// Replaces the data. Sessions and feed requests accepted from now on
    /// serve the new data; open sessions keep what they started with.
    ///
    /// # Panics
    ///
    /// Panics when the data is invalid (see [`ServerData::validate`]).
    pub fn set_data(&self, data: ServerData) {
        if let Err(e) = data.validate() {
            panic!("set_data: {e:#}");
        }
        let indexed = Arc::new(IndexedData::new(data));
        *self.shared.data.write().unwrap_or_else(|e| e.into_inner()) = indexed;
    }

    /// Returns a copy of the data served to new sessions.
    pub fn data(&self) -> ServerData {
        self.shared.data().data.clone()
    }

    /// Replaces the behavior for connections accepted from now on, and
    /// restarts the count of `close_mid_reply_times`.
    pub fn set_behavior(&self, behavior: Behavior) {
        *self
            .shared
            .behavior
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(behavior);
        self.shared.mid_reply_fired.store(0, Ordering::SeqCst);
    }

    pub fn behavior(&self) -> Behavior {
        (*self.shared.behavior()).clone()
    }

    pub fn stats(&self) -> SimStats {
        self.shared.stats.snapshot()
    }

    /// Stops accepting, closes every open connection and waits until the
    /// listeners are released.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
        tracing::info!(cli = %self.cli_addr, "simulated axigen server stopped");
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Decrements the open-session count when a session ends, even when its
/// task is aborted at shutdown.
struct SessionGuard(Arc<Shared>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.stats.session_closed();
    }
}

async fn accept_cli(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<TlsIdentity>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "cli accept failed");
                        continue;
                    }
                };
                StatsCounters::increment(&shared.stats.cli_connections);
                let behavior = shared.behavior();
                if behavior.close_on_accept {
                    tracing::debug!(%peer, "cli connection closed on accept by the close-on-accept switch");
                    continue;
                }
                let active = shared.stats.cli_sessions_active.load(Ordering::SeqCst);
                if behavior.max_sessions.is_some_and(|max| active >= max as u64) {
                    tracing::debug!(%peer, active, "cli connection closed on accept: session limit reached");
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let session_number = shared.session_numbers.fetch_add(1, Ordering::SeqCst);
                let shared = shared.clone();
                let tls = tls.clone();
                sessions.spawn(async move {
                    shared.stats.session_opened();
                    let guard = SessionGuard(shared.clone());
                    let session = Session::new(shared.clone(), shared.data(), behavior);
                    let result = match tls {
                        Some(identity) => match accept_tls(&identity, stream).await {
                            Some(stream) => session.run(stream, session_number).await,
                            None => Ok(()),
                        },
                        None => session.run(stream, session_number).await,
                    };
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "cli session ended with an error");
                    }
                    drop(guard);
                });
            }
        }
    }
    sessions.shutdown().await;
}

async fn accept_webadmin(
    listener: TcpListener,
    shared: Arc<Shared>,
    identity: TlsIdentity,
    mode: WebAdminMode,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "webadmin accept failed");
                        continue;
                    }
                };
                let shared = shared.clone();
                let identity = identity.clone();
                connections.spawn(async move {
                    if let Err(e) = serve_webadmin(shared, identity, mode, stream).await {
                        tracing::debug!(%peer, error = %e, "webadmin connection ended with an error");
                    }
                });
            }
        }
    }
    connections.shutdown().await;
}

async fn serve_webadmin(
    shared: Arc<Shared>,
    identity: TlsIdentity,
    mode: WebAdminMode,
    stream: TcpStream,
) -> std::io::Result<()> {
    let data = shared.data();
    let behavior = Arc::new(shared.behavior().webadmin.clone());
    let use_tls = match mode {
        WebAdminMode::Http => false,
        WebAdminMode::Https => true,
        WebAdminMode::Both => {
            let mut first = [0u8; 1];
            if stream.peek(&mut first).await? == 0 {
                return Ok(());
            }
            first[0] == TLS_HANDSHAKE_RECORD
        }
    };
    if use_tls {
        match accept_tls(&identity, stream).await {
            Some(stream) => webadmin::serve_connection(shared, data, behavior, stream).await,
            None => Ok(()),
        }
    } else {
        webadmin::serve_connection(shared, data, behavior, stream).await
    }
}

async fn accept_tls(
    identity: &TlsIdentity,
    stream: TcpStream,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, identity.acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "tls handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!("tls handshake timed out");
            None
        }
    }
}
