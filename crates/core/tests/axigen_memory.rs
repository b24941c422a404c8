//! Peak memory of collecting one domain with 100,000 accounts.
//!
//! Ignored by default because it takes minutes in a debug build. Run it with
//!
//!     cargo test -p axiquota-core --test axigen_memory -- --ignored --nocapture
//!
//! The fake server runs in a child process (this test binary started again
//! with `AXIQUOTA_SIM_CHILD` set), so the peak resident set size (`VmHWM`
//! in /proc/self/status) read here is the collector's alone.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axigen_sim::{GenerateSpec, ServerData, SimOptions, SimServer};
use axiquota_core::Secret;
use axiquota_core::axigen::collector::{CollectOptions, collect};
use axiquota_core::model::ServerEndpoint;

const CHILD_VARIABLE: &str = "AXIQUOTA_SIM_CHILD";
const ACCOUNTS: usize = 100_000;

fn large_data() -> ServerData {
    ServerData::generate(&GenerateSpec {
        seed: 42,
        domains: 1,
        accounts_per_domain: ACCOUNTS,
        ..GenerateSpec::default()
    })
}

/// Reads a `/proc/self/status` field in KB.
fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// The fake server, when started as the child of the test below. Prints
/// `PORTS <cli> <webadmin>` and serves until its parent closes stdin.
#[tokio::test]
#[ignore = "runs only as the child process of collect_100k_accounts_memory"]
async fn sim_child_process() {
    if std::env::var_os(CHILD_VARIABLE).is_none() {
        return;
    }
    let server = SimServer::start(large_data(), SimOptions::default())
        .await
        .unwrap();
    println!(
        "PORTS {} {}",
        server.cli_addr().port(),
        server.webadmin_addr().port()
    );
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    })
    .await
    .unwrap();
    server.shutdown().await;
}

#[tokio::test]
#[ignore = "takes minutes in a debug build; run with --ignored"]
async fn collect_100k_accounts_memory() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "sim_child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_VARIABLE, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let (cli_port, webadmin_port) = loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the child exited before serving"
        );
        // The harness prints the test name on the same line first.
        if let Some(start) = line.find("PORTS ") {
            let ports = line[start + "PORTS ".len()..].trim();
            let mut ports = ports.split(' ').map(|port| port.parse::<u16>().unwrap());
            break (ports.next().unwrap(), ports.next().unwrap());
        }
    };

    let endpoint = ServerEndpoint {
        hostname: "127.0.0.1".to_owned(),
        cli_port,
        webadmin_port,
        username: "admin".to_owned(),
        password: Secret::new("secret"),
        cli_tls: false,
        tls_verify: false,
        tls_fingerprints: Vec::new(),
        webadmin_enabled: false,
        webadmin_allow_http: false,
    };
    let options = CollectOptions {
        reply_timeout: Duration::from_secs(60),
        ..CollectOptions::default()
    };

    let before_kb = status_kb("VmHWM");
    let started = Instant::now();
    let snapshot = collect(&endpoint, &options).await.unwrap();
    let elapsed = started.elapsed();
    let peak_kb = status_kb("VmHWM");
    drop(child.stdin.take());
    let _ = child.wait();

    assert_eq!(snapshot.account_count(), ACCOUNTS);
    println!(
        "collected {ACCOUNTS} accounts in {elapsed:?}; peak RSS before {before_kb} KB, after {peak_kb} KB"
    );
    // The snapshot itself takes roughly 100 bytes per account; anything far
    // above that means replies or names are held more than once.
    assert!(peak_kb < 200 * 1024, "peak RSS {peak_kb} KB");
}
