//! Scale: a domain with 100,000 accounts, and 100 servers of 2,000
//! accounts in one process, as the benchmarks run them.

mod common;

use axigen_sim::{GenerateSpec, ServerData, SimOptions, SimServer, start_many};
use common::RawClient;

/// Peak resident memory of this process in KB, from /proc (Linux only).
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
async fn large_domain_lists_every_account() {
    let data = ServerData::generate(&GenerateSpec {
        seed: 12,
        domains: 1,
        accounts_per_domain: 100_000,
        ..GenerateSpec::default()
    });
    let domain = data.domains[0].name.clone();
    let last = data.domains[0].accounts.last().unwrap().name.clone();
    let server = SimServer::start(data.clone(), SimOptions::default())
        .await
        .unwrap();
    let mut client = RawClient::connect(server.cli_addr()).await;
    client.login().await;
    client
        .command(&format!("UPDATE Domain name \"{domain}\""))
        .await;

    let started = std::time::Instant::now();
    let reply = client.command("LIST Accounts").await;
    let elapsed = started.elapsed();

    let lines: Vec<&str> = reply.split("\r\n").collect();
    let dashes = lines
        .iter()
        .position(|line| line.starts_with("---"))
        .unwrap();
    let rows: Vec<&str> = lines[dashes + 1..]
        .iter()
        .take_while(|line| !line.is_empty())
        .copied()
        .collect();
    let expected: Vec<&str> = data.domains[0]
        .accounts
        .iter()
        .map(|account| account.name.as_str())
        .collect();
    assert_eq!(rows, expected);
    eprintln!(
        "LIST Accounts of 100,000 accounts: {} bytes in {elapsed:?}; peak RSS {:?} KB",
        reply.len(),
        peak_rss_kb()
    );

    // Lookups stay exact and case-insensitive at this size.
    let reply = client
        .command(&format!("UPDATE Account name \"{}\"", last.to_uppercase()))
        .await;
    assert_eq!(reply, "+OK: command successful\r\n<domain-account#> ");
}

#[tokio::test]
async fn hundred_servers_run_in_one_process() {
    let handles = start_many(
        100,
        |index| {
            ServerData::generate(&GenerateSpec {
                seed: index as u64,
                domains: 4,
                accounts_per_domain: 500,
                ..GenerateSpec::default()
            })
        },
        &SimOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(handles.len(), 100);
    let ports: std::collections::HashSet<u16> = handles
        .iter()
        .flat_map(|handle| [handle.cli_addr().port(), handle.webadmin_addr().port()])
        .collect();
    assert_eq!(ports.len(), 200);

    for index in [0, 57, 99] {
        let handle = &handles[index];
        assert_eq!(handle.data().account_count(), 2000);
        let mut client = RawClient::connect(handle.cli_addr()).await;
        client.login().await;
        let reply = client.command("LIST AllDomains").await;
        let first = &handle.data().domains[0].name;
        assert!(
            reply.contains(&format!("\r\n{first} ")),
            "server {index}: {reply:?}"
        );
    }
    eprintln!(
        "100 servers x 2,000 accounts: peak RSS {:?} KB",
        peak_rss_kb()
    );

    for handle in handles {
        handle.shutdown().await;
    }
}
