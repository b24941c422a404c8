//! The fake Axigen fleet: `count` simulated servers in one process, server
//! `i` on its own loopback address 127.0.0.(i+2), so that each one has its
//! own host name in the `servers` table.
//!
//! The `fake-servers` subcommand runs the fleet and prints its addresses as
//! one JSON line; when its standard input closes it prints the command
//! counters of all servers as a second JSON line and exits. [`Fleet`] is the
//! benchmark's side of that exchange.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use axigen_sim::{
    Behavior, GenerateSpec, LatencyKind, ServerData, SimOptions, SimServer, WebAdminMode,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// Loopback addresses from 127.0.0.2 to 127.0.0.254 give at most 253 servers.
pub const MAX_SERVERS: usize = 253;

/// The size of the generated fleet.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct FleetShape {
    /// Number of fake servers, at most 253
    #[arg(long, default_value_t = 100)]
    pub servers: usize,
    /// Domains per fake server
    #[arg(long, default_value_t = 4)]
    pub domains: usize,
    /// Accounts per domain
    #[arg(long, default_value_t = 500)]
    pub accounts_per_domain: usize,
    /// Worker threads of the fleet's runtime. With one, the fake servers
    /// never take more than one core from the poller and PostgreSQL.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub fleet_threads: u16,
}

impl FleetShape {
    pub fn accounts(&self) -> usize {
        self.servers * self.domains * self.accounts_per_domain
    }
}

/// The generated fleet: its size and the latency of its replies.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct FleetSpec {
    #[command(flatten)]
    pub shape: FleetShape,
    /// Pause in milliseconds before every CLI reply
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Make the pause a network round trip, which commands sent together
    /// share, instead of the servers' time per command
    #[arg(long)]
    pub network_latency: bool,
}

/// One fake server's addresses, as printed by `fake-servers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FakeServer {
    pub host: String,
    pub cli_port: u16,
    pub webadmin_port: u16,
}

/// Counters summed over every server of the fleet.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FleetStats {
    /// Commands received, by upper-cased first word.
    pub commands: BTreeMap<String, u64>,
    pub cli_connections: u64,
    pub logins: u64,
    pub webadmin_requests: u64,
    /// The largest number of CLI sessions one server had open at once.
    pub peak_sessions_per_server: u64,
    /// Replies sent after a latency pause, and the microseconds from the
    /// start of each pause to the end of its write, summed.
    pub delayed_replies: u64,
    pub delayed_reply_micros: u64,
    /// Commands that arrived before the reply to the previous one was sent.
    pub commands_sent_ahead: u64,
    /// CPU time of the whole fleet process, user and kernel, in seconds.
    pub cpu_seconds: f64,
}

impl FleetStats {
    /// Every command sent after login; each gets exactly one reply.
    pub fn commands_total(&self) -> u64 {
        self.commands.values().sum()
    }

    /// Returns the mean time a delayed reply took from the start of its pause to
    /// the end of its write, if any reply was delayed.
    pub fn mean_delayed_reply(&self) -> Option<Duration> {
        (self.delayed_replies > 0)
            .then(|| Duration::from_micros(self.delayed_reply_micros / self.delayed_replies))
    }
}

/// Runs the fleet until standard input closes (the `fake-servers`
/// subcommand).
///
/// # Errors
///
/// When a server cannot be bound, for example because the host does not
/// route 127.0.0.0/8 to the loopback interface.
pub async fn serve(spec: FleetSpec) -> anyhow::Result<()> {
    if spec.shape.servers == 0 || spec.shape.servers > MAX_SERVERS {
        bail!(
            "invalid --servers {}: expected 1 to {MAX_SERVERS}, one loopback address each",
            spec.shape.servers
        );
    }
    let options = SimOptions {
        behavior: Behavior {
            reply_latency: Duration::from_millis(spec.latency_ms),
            latency_kind: if spec.network_latency {
                LatencyKind::Network
            } else {
                LatencyKind::Processing
            },
            ..Behavior::default()
        },
        // HTTPS, as Axigen's WebAdmin on port 9443. Plain HTTP would cost
        // each server the client's wait for a TLS response before it falls
        // back.
        webadmin: WebAdminMode::Https,
        ..SimOptions::default()
    };

    let mut handles = Vec::with_capacity(spec.shape.servers);
    let mut servers = Vec::with_capacity(spec.shape.servers);
    for index in 0..spec.shape.servers {
        let octet = u8::try_from(index + 2).expect("at most 253 servers");
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, octet));
        let data = ServerData::generate(&GenerateSpec {
            seed: 1000 + index as u64,
            domains: spec.shape.domains,
            accounts_per_domain: spec.shape.accounts_per_domain,
            awkward_names: false,
            disabled_domain_percent: 20,
        });
        let address = SocketAddr::new(ip, 0);
        let handle = SimServer::start_on(address, address, data, options.clone())
            .await
            .with_context(|| format!("starting the fake server on {ip} failed"))?;
        servers.push(FakeServer {
            host: ip.to_string(),
            cli_port: handle.cli_addr().port(),
            webadmin_port: handle.webadmin_addr().port(),
        });
        handles.push(handle);
    }
    println!("{}", serde_json::to_string(&servers)?);

    // Standard input closing is the signal to report and stop.
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;

    let mut total = FleetStats::default();
    for handle in &handles {
        let stats = handle.stats();
        for (verb, count) in &stats.commands {
            *total.commands.entry(verb.clone()).or_default() += count;
        }
        total.cli_connections += stats.cli_connections;
        total.logins += stats.logins_succeeded;
        total.webadmin_requests += stats.webadmin_requests;
        total.delayed_replies += stats.delayed_replies;
        total.delayed_reply_micros += stats.delayed_reply_micros;
        total.commands_sent_ahead += stats.commands_sent_ahead;
        total.peak_sessions_per_server =
            total.peak_sessions_per_server.max(stats.cli_sessions_peak);
    }
    total.cpu_seconds = crate::process::own_cpu().as_secs_f64();
    println!("{}", serde_json::to_string(&total)?);
    for handle in handles {
        handle.shutdown().await;
    }
    Ok(())
}

/// A running `fake-servers` child process.
pub struct Fleet {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    pub servers: Vec<FakeServer>,
}

impl Fleet {
    /// Starts `fake-servers` from this same executable and waits for its
    /// addresses.
    ///
    /// # Errors
    ///
    /// When the child cannot start or prints no addresses.
    pub async fn start(spec: FleetSpec) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the benchmark executable failed")?;
        let mut child = tokio::process::Command::new(exe)
            .arg("fake-servers")
            .arg("--servers")
            .arg(spec.shape.servers.to_string())
            .arg("--domains")
            .arg(spec.shape.domains.to_string())
            .arg("--accounts-per-domain")
            .arg(spec.shape.accounts_per_domain.to_string())
            .arg("--latency-ms")
            .arg(spec.latency_ms.to_string())
            .arg("--fleet-threads")
            .arg(spec.shape.fleet_threads.to_string())
            .args(spec.network_latency.then_some("--network-latency"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting the fake servers failed")?;
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().context("no stdout pipe")?);

        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .await
            .context("reading the fake servers' addresses failed")?;
        let servers: Vec<FakeServer> = serde_json::from_str(&line).with_context(|| {
            format!("the fake servers printed no address list: {line:?}; see the error above")
        })?;
        Ok(Self {
            child,
            stdin,
            stdout,
            servers,
        })
    }

    /// Stops the fleet and returns its counters.
    ///
    /// # Errors
    ///
    /// When the child prints no counters or fails.
    pub async fn stop(mut self) -> anyhow::Result<FleetStats> {
        drop(self.stdin.take());
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .await
            .context("reading the fake servers' counters failed")?;
        let stats = serde_json::from_str(&line)
            .with_context(|| format!("invalid counters from the fake servers: {line:?}"))?;
        let status = self.child.wait().await?;
        if !status.success() {
            bail!("the fake servers exited with {status}");
        }
        Ok(stats)
    }
}
