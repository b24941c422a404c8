//! The `axigen-sim` binary: prints its addresses as one JSON line, writes
//! the data it serves, documents every switch and stops on SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use axigen_sim::ServerData;
use common::RawClient;

const BINARY: &str = env!("CARGO_BIN_EXE_axigen-sim");

/// Kills the child when a test fails half way.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> (Running, serde_json::Value) {
    let mut child = Command::new(BINARY)
        .args(args)
        .env("AXIGEN_SIM_PASSWORD", "from-env")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start axigen-sim");
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addresses = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    (running, addresses)
}

fn temp_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("axigen-sim-bin-{name}-{}.json", std::process::id()))
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn help_documents_every_switch() {
    let output = Command::new(BINARY).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--servers",
        "--cli-port",
        "--webadmin-port",
        "--data",
        "--write-data",
        "--seed",
        "--domains",
        "--accounts-per-domain",
        "--username",
        "--password",
        "--cli-tls",
        "--webadmin ",
        "--two-line-banner",
        "--no-user-status-line",
        "--telnet-iac",
        "--max-auth-errors",
        "--max-auth-commands",
        "--max-errors",
        "--idle-timeout-ms",
        "--close-on-accept",
        "--max-sessions",
        "--latency-ms",
        "--chunking",
        "--chunk-pause-us",
        "--close-mid-reply-after",
        "--close-mid-reply-on",
        "--close-mid-reply-times",
        "--console-codes",
        "--quiet",
        "--invalid-utf8",
        "--underline",
        "--name-column-width",
        "--extra-columns",
        "--domain-name-only",
        "--no-list-all-domains",
        "--mbox-size-unit",
        "--quota-notes",
        "--unlimited-quota",
        "--vanished-domain",
        "--vanished-account",
        "--registry-error",
        "--webadmin-missing-endpoint",
        "--webadmin-reject-credentials",
        "--webadmin-html-login",
        "--webadmin-omit-mbox-size",
        "--webadmin-extra-columns",
        "--webadmin-ragged-rows",
        "--webadmin-huge-body",
        "--webadmin-stall",
    ] {
        assert!(help.contains(flag), "--help does not mention {flag}");
    }
    assert!(help.contains("AXIGEN_SIM_PASSWORD"));
    assert!(!help.contains("from-env"));
}

#[tokio::test]
async fn binary_serves_written_data_with_env_password() {
    let path = temp_path("single");
    let path_text = path.to_str().unwrap();
    let (mut running, addresses) = spawn(&[
        "--seed",
        "7",
        "--domains",
        "3",
        "--accounts-per-domain",
        "4",
        "--write-data",
        path_text,
        "--quiet",
    ]);
    let servers = addresses["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0]["accounts"], 12);

    let written = ServerData::from_json_file(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let expected = ServerData::generate(&axigen_sim::GenerateSpec {
        seed: 7,
        domains: 3,
        accounts_per_domain: 4,
        ..axigen_sim::GenerateSpec::default()
    });
    assert_eq!(written, expected);

    let cli: SocketAddr = servers[0]["cli"].as_str().unwrap().parse().unwrap();
    let mut client = RawClient::connect(cli).await;
    client.read_reply().await;
    client.command("USER admin").await;
    assert_eq!(
        client.command("from-env").await,
        "+OK: Authentication successful\r\n<#> "
    );
    // --quiet: rows only, one per domain.
    let reply = client.command("LIST AllDomains").await;
    assert_eq!(reply.lines().count(), 3 + 2, "{reply:?}");
    assert!(reply.starts_with(&expected.domains[0].name), "{reply:?}");

    sigterm(&running.0);
    let status = running.0.wait().unwrap();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn binary_stops_cleanly_when_signalled_at_once() {
    // The signal goes out as soon as the addresses are read, which is when
    // a supervisor or a test may first stop the process.
    for _ in 0..10 {
        let (mut running, _) = spawn(&["--domains", "1", "--accounts-per-domain", "1"]);
        sigterm(&running.0);
        let status = running.0.wait().unwrap();
        assert!(status.success(), "exit status {status}");
    }
}

#[tokio::test]
async fn binary_runs_many_servers() {
    let path = temp_path("many");
    let (running, addresses) = spawn(&[
        "--servers",
        "3",
        "--domains",
        "1",
        "--accounts-per-domain",
        "2",
        "--write-data",
        path.to_str().unwrap(),
    ]);
    let servers = addresses["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 3);
    let written: Vec<ServerData> =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(written.len(), 3);

    let mut ports = std::collections::HashSet::new();
    for (server, data) in servers.iter().zip(&written) {
        let cli: SocketAddr = server["cli"].as_str().unwrap().parse().unwrap();
        assert!(ports.insert(cli.port()));
        let mut client = RawClient::connect(cli).await;
        client.read_reply().await;
        client.command("USER admin").await;
        client.command("from-env").await;
        let reply = client.command("LIST AllDomains").await;
        assert!(
            reply.contains(&format!("\r\n{} ", data.domains[0].name)),
            "{reply:?}"
        );
    }
    sigterm(&running.0);
}

#[test]
fn binary_rejects_missing_data_file() {
    let output = Command::new(BINARY)
        .args(["--data", "/nonexistent/axigen-sim-data.json"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("failed to read data file /nonexistent/axigen-sim-data.json"),
        "{stderr}"
    );
}
