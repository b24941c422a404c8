//! Faults of the CLI and of the WebAdmin feed: each gives its documented
//! outcome (an error, a recorded skip, or CLI usage instead of the feed)
//! within its timeout.

mod axigen_common;

use std::time::{Duration, Instant};

use axigen_sim::{Behavior, MidReplyTrigger, ServerData, Stall, WebAdminBehavior, WebAdminMode};
use axiquota_core::Secret;
use axiquota_core::axigen::cli::{CliClient, CliError, ConnectOptions};
use axiquota_core::axigen::collector::{CollectOptions, collect};
use axiquota_core::axigen::tls::fingerprint;
use axiquota_core::model::{SkippedItem, UsageSource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use axigen_common::*;

/// The most any fault test may take; each fault's own timeout is 300 ms to
/// 2 s, so this leaves a wide margin on a loaded machine.
const BOUND: Duration = Duration::from_secs(8);

#[tokio::test]
async fn wrong_password_fails_without_retry() {
    let server = start(sample_data(1), Behavior::default()).await;
    let mut endpoint = endpoint(&server);
    endpoint.password = Secret::new("Wr0ng-Pa55");

    let started = Instant::now();
    let error = collect(&endpoint, &quick_options()).await.unwrap_err();
    assert!(started.elapsed() < BOUND);
    assert!(
        matches!(error.source, CliError::AuthenticationFailed { .. }),
        "{error:?}"
    );
    assert_eq!(error.hostname, "127.0.0.1");
    assert!(error.to_string().contains("127.0.0.1"), "{error}");
    assert!(!error.to_string().contains("Wr0ng-Pa55"), "{error}");
    assert!(!format!("{error:?}").contains("Wr0ng-Pa55"));
    assert_eq!(
        server.stats().logins_failed,
        1,
        "a rejected password is never retried"
    );
}

#[tokio::test]
async fn close_on_accept_fails_server() {
    let behavior = Behavior {
        close_on_accept: true,
        ..Behavior::default()
    };
    let server = start(sample_data(2), behavior).await;

    let started = Instant::now();
    let error = collect(&endpoint(&server), &quick_options())
        .await
        .unwrap_err();
    assert!(started.elapsed() < BOUND);
    assert!(matches!(error.source, CliError::Closed { .. }), "{error:?}");
    // The first session is retried once.
    assert_eq!(server.stats().cli_connections, 2);
}

#[tokio::test]
async fn idle_close_is_closed_error() {
    let behavior = Behavior {
        idle_timeout: Duration::from_millis(200),
        ..Behavior::default()
    };
    let server = start(sample_data(3), behavior).await;
    let options = ConnectOptions {
        reply_timeout: Duration::from_millis(300),
        ..ConnectOptions::default()
    };
    let mut client = CliClient::login(&endpoint(&server), &options)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;

    let started = Instant::now();
    let error = client.list_domains().await.unwrap_err();
    assert!(started.elapsed() < BOUND);
    assert!(error.is_connection_lost(), "{error:?}");
    assert_eq!(server.stats().sessions_timed_out, 1);
}

#[tokio::test]
async fn one_close_mid_reply_is_retried() {
    let data = sample_data(4);
    let behavior = Behavior {
        close_mid_reply: Some(MidReplyTrigger::AfterReplies(9)),
        close_mid_reply_times: Some(1),
        ..Behavior::default()
    };
    let server = start(data.clone(), behavior).await;

    let snapshot = collect(&endpoint(&server), &patient_options())
        .await
        .unwrap();
    assert_eq!(comparable(&snapshot), expected_cli(&data));
    assert!(snapshot.skipped.is_empty());
    assert_eq!(server.stats().mid_reply_closes, 1);
    assert_read_only(&server);
}

#[tokio::test]
async fn repeated_close_mid_reply_fails_server() {
    let behavior = Behavior {
        close_mid_reply: Some(MidReplyTrigger::OnCommand(
            "SHOW RegistryInformation".to_owned(),
        )),
        ..Behavior::default()
    };
    let server = start(sample_data(5), behavior).await;

    let started = Instant::now();
    let error = collect(&endpoint(&server), &quick_options())
        .await
        .unwrap_err();
    assert!(started.elapsed() < BOUND);
    assert!(matches!(error.source, CliError::Closed { .. }), "{error:?}");
    assert!(
        server.stats().mid_reply_closes >= 2,
        "the account is tried on a second session"
    );
}

/// An address `account@domain` of the data, and the domain at `domain`.
fn address(data: &ServerData, domain: usize, account: usize) -> (String, String) {
    let domain = &data.domains[domain];
    (domain.name.clone(), domain.accounts[account].name.clone())
}

#[tokio::test]
async fn rejected_objects_are_skipped() {
    rejected_objects_are_skipped_with(patient_options()).await;
}

#[tokio::test]
async fn rejected_objects_are_skipped_when_sending_ahead() {
    let options = CollectOptions {
        send_ahead: true,
        ..patient_options()
    };
    rejected_objects_are_skipped_with(options).await;
}

async fn rejected_objects_are_skipped_with(options: CollectOptions) {
    let data = sample_data(6);
    let (gone_domain, _) = address(&data, 1, 0);
    let (domain_a, vanished) = address(&data, 0, 2);
    let (domain_b, broken) = address(&data, 2, 3);
    let behavior = Behavior {
        vanished_domains: vec![gone_domain.to_uppercase()],
        vanished_accounts: vec![format!("{vanished}@{domain_a}")],
        registry_errors: vec![format!("{broken}@{domain_b}")],
        ..Behavior::default()
    };
    let server = start(data.clone(), behavior).await;

    let snapshot = collect(&endpoint(&server), &options).await.unwrap();

    let mut want = expected_cli(&data);
    want.remove(&gone_domain);
    want.get_mut(&domain_a)
        .unwrap()
        .1
        .retain(|row| row.0 != vanished);
    want.get_mut(&domain_b)
        .unwrap()
        .1
        .retain(|row| row.0 != broken);
    assert_eq!(comparable(&snapshot), want);

    let mut skipped: Vec<(String, Option<String>)> = snapshot
        .skipped
        .iter()
        .map(|item| (item.domain.clone(), item.account.clone()))
        .collect();
    skipped.sort();
    let mut want_skipped = vec![
        (gone_domain.clone(), None),
        (domain_a.clone(), Some(vanished.clone())),
        (domain_b.clone(), Some(broken.clone())),
    ];
    want_skipped.sort();
    assert_eq!(skipped, want_skipped);

    let reason = |domain: &str, account: Option<&str>| -> &SkippedItem {
        snapshot
            .skipped
            .iter()
            .find(|item| item.domain == domain && item.account.as_deref() == account)
            .unwrap()
    };
    assert!(
        reason(&gone_domain, None)
            .reason
            .starts_with("UPDATE Domain name")
    );
    assert!(
        reason(&domain_a, Some(&vanished))
            .reason
            .starts_with("UPDATE Account name")
    );
    assert!(
        reason(&domain_b, Some(&broken))
            .reason
            .starts_with("SHOW RegistryInformation rejected: -ERR")
    );
    assert_read_only(&server);
}

/// Data whose first domain has `count` vanished accounts, so one session
/// collects `count` `-ERR` replies there.
fn data_with_vanished(count: usize) -> (ServerData, Vec<String>, Vec<String>) {
    let data = axigen_sim::ServerData::generate(&axigen_sim::GenerateSpec {
        seed: 9,
        domains: 2,
        accounts_per_domain: 30,
        ..axigen_sim::GenerateSpec::default()
    });
    let domain = &data.domains[0];
    let names: Vec<String> = domain
        .accounts
        .iter()
        .take(count)
        .map(|account| account.name.clone())
        .collect();
    let addresses = names
        .iter()
        .map(|name| format!("{name}@{}", domain.name))
        .collect();
    (data, names, addresses)
}

/// What a snapshot of `data` must contain once the accounts `names` of its
/// first domain are gone.
fn expected_without(data: &ServerData, names: &[String]) -> Comparable {
    let mut want = expected_cli(data);
    want.get_mut(&data.domains[0].name)
        .unwrap()
        .1
        .retain(|row| !names.contains(&row.0));
    want
}

/// Returns options for one CLI session that sends an account's commands
/// together.
fn one_session_sending_ahead() -> CollectOptions {
    CollectOptions {
        sessions_per_server: 1,
        send_ahead: true,
        ..patient_options()
    }
}

#[tokio::test]
async fn session_replaced_before_error_limit() {
    session_replaced_before_error_limit_with(false).await;
}

#[tokio::test]
async fn session_replaced_before_error_limit_when_sending_ahead() {
    session_replaced_before_error_limit_with(true).await;
}

async fn session_replaced_before_error_limit_with(send_ahead: bool) {
    let (data, names, addresses) = data_with_vanished(12);
    // Sending ahead, one vanished account costs up to 5 errors, so the
    // client keeps its sessions further from the limit.
    let (max_errors, client_limit) = if send_ahead { (10, 9) } else { (6, 5) };
    let behavior = Behavior {
        max_errors,
        vanished_accounts: addresses,
        ..Behavior::default()
    };
    let server = start(data.clone(), behavior).await;
    let options = CollectOptions {
        sessions_per_server: 1,
        max_errors_per_session: client_limit,
        send_ahead,
        ..patient_options()
    };

    let snapshot = collect(&endpoint(&server), &options).await.unwrap();
    assert_eq!(comparable(&snapshot), expected_without(&data, &names));
    assert_eq!(snapshot.skipped.len(), 12);

    let stats = server.stats();
    assert_eq!(
        stats.sessions_closed_by_limit, 0,
        "the client must leave before the server's limit"
    );
    assert!(
        stats.logins_succeeded >= 4,
        "12 vanished accounts, at most {client_limit} errors per session: {} logins",
        stats.logins_succeeded
    );
}

#[tokio::test]
async fn server_error_limit_closes_and_is_survived() {
    let (data, names, addresses) = data_with_vanished(8);
    let behavior = Behavior {
        max_errors: 4,
        vanished_accounts: addresses,
        ..Behavior::default()
    };
    let server = start(data.clone(), behavior).await;
    // The client's limit is above the server's, so the server closes.
    let options = CollectOptions {
        sessions_per_server: 1,
        max_errors_per_session: 10,
        ..patient_options()
    };

    let snapshot = collect(&endpoint(&server), &options).await.unwrap();
    assert_eq!(comparable(&snapshot), expected_without(&data, &names));
    assert_eq!(snapshot.skipped.len(), 8);
    assert!(server.stats().sessions_closed_by_limit >= 1);
}

#[tokio::test]
async fn cli_tls_certificate_checked() {
    let server = start_with(
        sample_data(10),
        Behavior::default(),
        true,
        WebAdminMode::Http,
    )
    .await;
    let mut endpoint = endpoint(&server);
    endpoint.tls_verify = true;

    let error = collect(&endpoint, &quick_options()).await.unwrap_err();
    let CliError::Tls { detail, .. } = &error.source else {
        panic!("expected a TLS error, got {error:?}");
    };
    // The message gives the fingerprint to pin after checking it.
    assert!(detail.contains("not trusted"), "{detail}");
    assert!(
        detail.contains(&fingerprint(server.certificate_der())),
        "{detail}"
    );
    assert!(detail.contains("tls_fingerprints"), "{detail}");
    assert_eq!(server.stats().logins_succeeded, 0);
}

#[tokio::test]
async fn plain_cli_to_tls_listener_fails() {
    let server = start_with(
        sample_data(10),
        Behavior::default(),
        true,
        WebAdminMode::Http,
    )
    .await;
    let mut endpoint = endpoint(&server);
    endpoint.cli_tls = false;

    let started = Instant::now();
    let error = collect(&endpoint, &quick_options()).await.unwrap_err();
    assert!(started.elapsed() < BOUND);
    assert!(
        error.source.is_connection_lost() || matches!(error.source, CliError::Protocol { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("set cli_tls to true"), "{error}");
}

// --- WebAdmin feed ---

fn feed_endpoint(
    server: &axigen_sim::SimHandle,
    allow_http: bool,
) -> axiquota_core::model::ServerEndpoint {
    let mut endpoint = endpoint(server);
    endpoint.webadmin_enabled = true;
    endpoint.webadmin_allow_http = allow_http;
    endpoint
}

#[tokio::test]
async fn feed_over_http_when_allowed() {
    let data = sample_data(11);
    let server = start(data.clone(), Behavior::default()).await;

    let snapshot = collect(&feed_endpoint(&server, true), &patient_options())
        .await
        .unwrap();
    assert_eq!(snapshot.webadmin_error, None);
    assert_eq!(
        comparable(&snapshot),
        expected(&data, false, |_, _| UsageSource::Webadmin)
    );
    assert_eq!(
        server.stats().command_count("SHOW"),
        data.account_count() as u64,
        "quota only"
    );
}

#[tokio::test]
async fn feed_over_https() {
    let data = sample_data(12);
    let behavior = Behavior {
        webadmin: WebAdminBehavior {
            extra_columns: true,
            ragged_rows: true,
            ..WebAdminBehavior::default()
        },
        ..Behavior::default()
    };
    let server = start_with(data.clone(), behavior, false, WebAdminMode::Https).await;

    let snapshot = collect(&feed_endpoint(&server, false), &patient_options())
        .await
        .unwrap();
    assert_eq!(snapshot.webadmin_error, None);
    assert_eq!(
        comparable(&snapshot),
        expected(&data, false, |_, _| UsageSource::Webadmin)
    );
}

#[tokio::test]
async fn feed_not_sent_over_http_unless_allowed() {
    let data = sample_data(13);
    let server = start(data.clone(), Behavior::default()).await;

    let snapshot = collect(&feed_endpoint(&server, false), &quick_options())
        .await
        .unwrap();
    let error = snapshot
        .webadmin_error
        .clone()
        .expect("HTTPS to a plain HTTP port fails");
    assert!(error.contains("https://"), "{error}");
    assert_eq!(comparable(&snapshot), expected_cli(&data));
    assert_eq!(server.stats().webadmin_requests, 0, "no request in clear");
}

#[tokio::test]
async fn feed_certificate_checked() {
    let data = sample_data(14);
    let server = start_with(data.clone(), Behavior::default(), false, WebAdminMode::Both).await;
    let mut endpoint = feed_endpoint(&server, true);
    endpoint.tls_verify = true;

    let snapshot = collect(&endpoint, &quick_options()).await.unwrap();
    let error = snapshot
        .webadmin_error
        .clone()
        .expect("a self-signed certificate is rejected");
    assert!(error.contains("invalid certificate"), "{error}");
    assert!(
        error.contains(&fingerprint(server.certificate_der())),
        "{error}"
    );
    // A rejected certificate never leads to plain HTTP, even when allowed,
    // so every usage figure comes from the CLI.
    assert_eq!(comparable(&snapshot), expected_cli(&data));
}

#[tokio::test]
async fn pinned_certificate_accepted_over_cli_and_feed() {
    let data = sample_data(16);
    let server = start_with(data.clone(), Behavior::default(), true, WebAdminMode::Https).await;
    let mut endpoint = feed_endpoint(&server, false);
    // The pin decides, so certificate checking may stay on for a
    // self-signed certificate.
    endpoint.tls_verify = true;
    endpoint.tls_fingerprints = vec!["0".repeat(64), fingerprint(server.certificate_der())];

    let snapshot = collect(&endpoint, &quick_options()).await.unwrap();
    assert_eq!(snapshot.webadmin_error, None);
    assert_eq!(
        snapshot.account_count(),
        data.domains.iter().map(|d| d.accounts.len()).sum::<usize>()
    );
    assert!(
        snapshot
            .domains
            .iter()
            .flat_map(|domain| &domain.accounts)
            .all(|account| account.usage_source == UsageSource::Webadmin)
    );
    assert!(server.stats().logins_succeeded >= 1);
}

#[tokio::test]
async fn other_certificate_rejected_by_pin() {
    let data = sample_data(17);
    let server = start_with(data.clone(), Behavior::default(), true, WebAdminMode::Https).await;
    let other = start_with(
        sample_data(18),
        Behavior::default(),
        true,
        WebAdminMode::Http,
    )
    .await;
    let presented = fingerprint(server.certificate_der());
    let mut endpoint = feed_endpoint(&server, true);
    endpoint.tls_fingerprints = vec![fingerprint(other.certificate_der())];

    let error = collect(&endpoint, &quick_options()).await.unwrap_err();
    let CliError::Tls { detail, .. } = &error.source else {
        panic!("expected a TLS error, got {error:?}");
    };
    assert!(detail.contains(&presented), "{detail}");
    assert!(detail.contains("set its new fingerprint"), "{detail}");
    assert_eq!(server.stats().logins_succeeded, 0);

    // Over a plain CLI, the feed meets the same pin and the usage comes
    // from the CLI.
    let plain = start_with(data.clone(), Behavior::default(), false, WebAdminMode::Both).await;
    let mut endpoint = feed_endpoint(&plain, false);
    endpoint.tls_fingerprints = vec![fingerprint(other.certificate_der())];
    let snapshot = collect(&endpoint, &quick_options()).await.unwrap();
    let feed_error = snapshot
        .webadmin_error
        .clone()
        .expect("the feed is rejected");
    assert!(
        feed_error.contains(&fingerprint(plain.certificate_der())),
        "{feed_error}"
    );
    assert_eq!(comparable(&snapshot), expected_cli(&data));
    assert_eq!(plain.stats().webadmin_requests, 0);
}

/// Runs one feed fault: the collection must succeed with CLI usage and
/// record a feed error containing `marker`, within the bound.
async fn assert_feed_fault(
    name: &str,
    webadmin: WebAdminBehavior,
    options: CollectOptions,
    marker: &str,
) {
    let data = sample_data(15);
    let behavior = Behavior {
        webadmin,
        ..Behavior::default()
    };
    let server = start(data.clone(), behavior).await;

    let started = Instant::now();
    let snapshot = collect(&feed_endpoint(&server, true), &options)
        .await
        .unwrap_or_else(|error| panic!("{name}: {error}"));
    assert!(
        started.elapsed() < BOUND,
        "{name}: took {:?}",
        started.elapsed()
    );
    let error = snapshot
        .webadmin_error
        .clone()
        .unwrap_or_else(|| panic!("{name}: no feed error"));
    assert!(error.contains(marker), "{name}: {error}");
    assert_eq!(comparable(&snapshot), expected_cli(&data), "{name}");
    assert!(!error.contains("secret"), "{name}: {error}");
}

#[tokio::test]
async fn feed_faults_fall_back_to_cli() {
    let cases = [
        (
            "missing endpoint",
            WebAdminBehavior {
                missing_endpoint: true,
                ..WebAdminBehavior::default()
            },
            "HTTP 404",
        ),
        (
            "401",
            WebAdminBehavior {
                reject_credentials: true,
                ..WebAdminBehavior::default()
            },
            "HTTP 401",
        ),
        (
            "HTML login page",
            WebAdminBehavior {
                html_login_page: true,
                ..WebAdminBehavior::default()
            },
            "not a tab-separated table",
        ),
        (
            "missing mboxSizeKb",
            WebAdminBehavior {
                omit_mbox_size_column: true,
                ..WebAdminBehavior::default()
            },
            "no \"mboxSizeKb\" column",
        ),
        (
            "redirect",
            WebAdminBehavior {
                redirect_to: Some("http://127.0.0.1:9/data/accounts".to_owned()),
                ..WebAdminBehavior::default()
            },
            "HTTP 302",
        ),
        (
            "stall before headers",
            WebAdminBehavior {
                stall: Some(Stall::BeforeHeaders),
                ..WebAdminBehavior::default()
            },
            "stalled",
        ),
        (
            "stall after headers",
            WebAdminBehavior {
                stall: Some(Stall::AfterHeaders),
                ..WebAdminBehavior::default()
            },
            "stalled",
        ),
    ];
    for (name, webadmin, marker) in cases {
        assert_feed_fault(name, webadmin, quick_options(), marker).await;
    }
}

#[tokio::test]
async fn feed_larger_than_limit() {
    let webadmin = WebAdminBehavior {
        huge_body_bytes: Some(4 * 1024 * 1024),
        ..WebAdminBehavior::default()
    };
    let options = CollectOptions {
        max_webadmin_bytes: 1024 * 1024,
        ..quick_options()
    };
    assert_feed_fault("huge body", webadmin, options, "larger than the limit").await;
}

#[tokio::test]
async fn feed_slower_than_total_timeout() {
    // The feed trickles: never idle for the stall timeout, but longer than
    // the total timeout.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Serves every connection: the HTTPS attempt comes first and fails.
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\nContent-Type: text/tab-separated-values\r\n\r\n";
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(b"accountEmail\tmboxSizeKb\n").await;
                for index in 0..100 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if stream
                        .write_all(format!("u{index}@x\t1\n").as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });

    let data = sample_data(16);
    let server = start(data.clone(), Behavior::default()).await;
    let mut endpoint = feed_endpoint(&server, true);
    endpoint.webadmin_port = port;
    let options = CollectOptions {
        webadmin_timeout: Duration::from_millis(800),
        ..quick_options()
    };

    let started = Instant::now();
    let snapshot = collect(&endpoint, &options).await.unwrap();
    assert!(started.elapsed() < BOUND);
    let error = snapshot.webadmin_error.clone().unwrap();
    assert!(error.contains("timed out"), "{error}");
    assert_eq!(comparable(&snapshot), expected_cli(&data));
}

#[tokio::test]
async fn account_missing_from_feed_uses_cli() {
    let data = sample_data(17);
    let server = start(data.clone(), Behavior::default()).await;

    // A hand-written feed that lists every other account, with addresses in
    // upper case, so the rest must come from the CLI.
    let mut body = String::from("id\taccountEmail\tmboxSizeKb\tnote\n");
    let mut listed = std::collections::HashSet::new();
    for domain in &data.domains {
        for (index, account) in domain.accounts.iter().enumerate() {
            if index % 2 == 0 {
                let address = format!("{}@{}", account.name, domain.name);
                body.push_str(&format!(
                    "{index}\t{}\t{}\tx\n",
                    address.to_uppercase(),
                    account.used_kb
                ));
                listed.insert((domain.name.clone(), account.name.clone()));
            }
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let body = std::sync::Arc::new(body);
    // Serves every connection: the HTTPS attempt comes first and fails.
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
            });
        }
    });

    let mut endpoint = feed_endpoint(&server, true);
    endpoint.webadmin_port = port;
    let want = expected(&data, false, |domain, account| {
        if listed.contains(&(domain.to_owned(), account.to_owned())) {
            UsageSource::Webadmin
        } else {
            UsageSource::Cli
        }
    });
    for send_ahead in [false, true] {
        let options = CollectOptions {
            send_ahead,
            ..patient_options()
        };
        let snapshot = collect(&endpoint, &options).await.unwrap();
        assert_eq!(snapshot.webadmin_error, None, "send_ahead {send_ahead}");
        assert_eq!(comparable(&snapshot), want, "send_ahead {send_ahead}");
        assert_eq!(snapshot.usage_source_summary(), "mixed");
    }
    assert!(server.stats().commands_sent_ahead > 0);
}

#[tokio::test]
async fn dropped_batch_falls_back_to_single_commands() {
    let data = sample_data(21);
    let behavior = Behavior {
        discard_typeahead: true,
        ..Behavior::default()
    };
    let server = start(data.clone(), behavior).await;
    // The first batch waits for this long before the client gives up on
    // sending ahead.
    let options = CollectOptions {
        reply_timeout: Duration::from_millis(300),
        ..one_session_sending_ahead()
    };

    let snapshot = collect(&endpoint(&server), &options).await.unwrap();
    assert_eq!(comparable(&snapshot), expected_cli(&data));
    assert!(snapshot.skipped.is_empty(), "{:?}", snapshot.skipped);
    // One session lost its batch and was replaced; every later account
    // was read one command at a time on the second.
    assert_eq!(server.stats().logins_succeeded, 2);
    assert!(snapshot.sent_ahead_dropped);
    assert_read_only(&server);
}

#[tokio::test]
async fn low_error_limit_batch_vanished_account() {
    // A batch for a vanished account draws five -ERR replies, and this
    // server closes the session at the fifth.
    let (data, names, addresses) = data_with_vanished(1);
    let behavior = Behavior {
        max_errors: 5,
        vanished_accounts: addresses,
        ..Behavior::default()
    };
    let server = start(data.clone(), behavior).await;
    let options = one_session_sending_ahead();

    let snapshot = collect(&endpoint(&server), &options).await.unwrap();
    assert_eq!(comparable(&snapshot), expected_without(&data, &names));
    assert_eq!(snapshot.skipped.len(), 1);
    assert_read_only(&server);
}

#[tokio::test]
async fn dropped_batch_after_lost_session_falls_back() {
    // The first account's first attempt loses its session, and its retry
    // is the batch that the server drops.
    let data = sample_data(22);
    let behavior = Behavior {
        discard_typeahead: true,
        close_mid_reply: Some(MidReplyTrigger::OnCommand("UPDATE Account".to_owned())),
        close_mid_reply_times: Some(1),
        ..Behavior::default()
    };
    let server = start(data.clone(), behavior).await;
    let options = CollectOptions {
        reply_timeout: Duration::from_millis(300),
        ..one_session_sending_ahead()
    };

    let snapshot = collect(&endpoint(&server), &options).await.unwrap();
    assert_eq!(comparable(&snapshot), expected_cli(&data));
    assert!(snapshot.skipped.is_empty(), "{:?}", snapshot.skipped);
    assert_eq!(server.stats().mid_reply_closes, 1);
    assert_read_only(&server);
}
