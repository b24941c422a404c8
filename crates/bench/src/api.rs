//! The API benchmark: the real `api` binary (without authentication) over
//! the stored snapshot, driven by a small load generator on loopback.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use sqlx::PgPool;
use tokio::process::Child;

use crate::process;

/// A running `api` process.
pub struct ApiProcess {
    child: Child,
    pub base: String,
}

impl ApiProcess {
    /// Starts `api --no-auth` on a free loopback port and waits until
    /// `/ready` responds.
    ///
    /// # Errors
    ///
    /// When the API does not become ready within 30 seconds.
    pub async fn start(
        binary: &Path,
        database_url: &str,
        fernet_key: &str,
        log_file: &Path,
    ) -> anyhow::Result<Self> {
        // The port is free when probed; nothing else on this machine is
        // expected to take it in the moment before the API binds it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::fs::File::create(log_file)?;
        let child = tokio::process::Command::new(binary)
            .arg("--no-auth")
            .env("API_LISTEN", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", database_url)
            .env("FERNET_KEY", fernet_key)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} failed", binary.display()))?;
        let api = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };

        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = client.get(format!("{}/ready", api.base)).send().await;
            if matches!(&ready, Ok(response) if response.status().is_success()) {
                return Ok(api);
            }
            if Instant::now() > deadline {
                bail!(
                    "the API did not become ready within 30 s; its log is in {}",
                    log_file.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `VmHWM` and `VmRSS` of the API process, in KB.
    ///
    /// # Errors
    ///
    /// When `/proc` cannot be read.
    pub fn memory_kb(&self) -> anyhow::Result<(u64, u64)> {
        process::memory_kb(self.child.id().context("the API has exited")?)
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Latency percentiles of a set of requests.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub requests: usize,
    pub median: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// Sum of all latencies: the wall time of requests sent one at a time.
    pub total: Duration,
}

impl Latency {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        let total = samples.iter().sum();
        let at = |fraction: f64| {
            let index = ((samples.len() as f64 * fraction).ceil() as usize).saturating_sub(1);
            samples[index.min(samples.len() - 1)]
        };
        Self {
            requests: samples.len(),
            median: at(0.5),
            p99: at(0.99),
            max: samples[samples.len() - 1],
            total,
        }
    }
}

/// Picks `count` addresses that exist on exactly one server, so every
/// lookup returns 200 rather than 409.
///
/// # Errors
///
/// Database errors, or too few accounts.
pub async fn sample_addresses(pool: &PgPool, count: i64) -> anyhow::Result<Vec<String>> {
    let addresses: Vec<String> = sqlx::query_scalar(
        "SELECT email FROM accounts GROUP BY email HAVING count(*) = 1 \
         ORDER BY md5(email) LIMIT $1",
    )
    .bind(count)
    .fetch_all(pool)
    .await?;
    if addresses.is_empty() {
        bail!("no stored account to look up");
    }
    Ok(addresses)
}

/// Sends one lookup. A status other than 200 is an error.
async fn lookup(client: &reqwest::Client, base: &str, address: &str) -> anyhow::Result<()> {
    let response = client
        .get(format!("{base}/report?account={}", percent_encode(address)))
        .send()
        .await?;
    let status = response.status();
    let body = response.bytes().await?;
    if status != reqwest::StatusCode::OK {
        bail!(
            "GET /report?account={address} returned {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

/// Percent-encodes every byte outside the URL's unreserved characters.
fn percent_encode(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Sends `requests` lookups one after the other on one kept-alive
/// connection and returns their latencies.
///
/// # Errors
///
/// The first failed lookup.
pub async fn sequential_lookups(
    base: &str,
    addresses: &[String],
    requests: usize,
) -> anyhow::Result<Latency> {
    let client = reqwest::Client::new();
    // One untimed request opens the connection.
    lookup(&client, base, &addresses[0]).await?;
    let mut samples = Vec::with_capacity(requests);
    for index in 0..requests {
        let start = Instant::now();
        lookup(&client, base, &addresses[index % addresses.len()]).await?;
        samples.push(start.elapsed());
    }
    Ok(Latency::of(samples))
}

/// Throughput of lookups under load.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub connections: usize,
    pub duration: Duration,
    pub latency: Latency,
}

impl Load {
    pub fn requests_per_second(&self) -> f64 {
        self.latency.requests as f64 / self.duration.as_secs_f64()
    }
}

/// Runs `connections` clients that each send lookups back to back for
/// `duration`.
///
/// # Errors
///
/// The first failed lookup.
pub async fn concurrent_lookups(
    base: &str,
    addresses: &[String],
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Load> {
    let stop = Arc::new(AtomicBool::new(false));
    let addresses = Arc::new(addresses.to_vec());
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(connections);
    for worker in 0..connections {
        let stop = stop.clone();
        let addresses = addresses.clone();
        let base = base.to_owned();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut samples = Vec::new();
            let mut index = worker * 7919;
            while !stop.load(Ordering::Relaxed) {
                let begin = Instant::now();
                lookup(&client, &base, &addresses[index % addresses.len()]).await?;
                samples.push(begin.elapsed());
                index += 1;
            }
            anyhow::Ok(samples)
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await??);
    }
    let elapsed = start.elapsed();
    Ok(Load {
        connections,
        duration: elapsed,
        latency: Latency::of(samples),
    })
}

/// A downloaded report: how long it took and how large it was.
#[derive(Debug, Clone, Copy)]
pub struct Download {
    pub time_to_first_byte: Duration,
    pub total: Duration,
    pub bytes: u64,
}

/// Downloads `path` completely, counting its bytes without keeping them.
///
/// # Errors
///
/// A status other than 200 or a broken stream.
pub async fn download(base: &str, path: &str) -> anyhow::Result<Download> {
    let client = reqwest::Client::new();
    let start = Instant::now();
    let response = client.get(format!("{base}{path}")).send().await?;
    let time_to_first_byte = start.elapsed();
    if response.status() != reqwest::StatusCode::OK {
        bail!("GET {path} returned {}", response.status());
    }
    let mut bytes = 0u64;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        bytes += chunk?.len() as u64;
    }
    Ok(Download {
        time_to_first_byte,
        total: start.elapsed(),
        bytes,
    })
}
