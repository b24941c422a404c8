//! The CLI framing layer against scripted servers on 127.0.0.1: each test
//! serves exact bytes, cut into exact writes, and checks what the client
//! makes of them and what it sends.

use std::time::{Duration, Instant};

use axiquota_core::Secret;
use axiquota_core::axigen::cli::{
    CliClient, CliError, ConnectOptions, Connection, ListedDomain, Reply,
};
use axiquota_core::model::{DomainStatus, ServerEndpoint};
use proptest::prelude::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One step of a scripted server.
#[derive(Debug, Clone)]
enum Step {
    /// Send these writes, each flushed on its own.
    Send(Vec<Vec<u8>>),
    /// Read one line from the client and record it.
    Receive,
    /// Wait this long before the next step.
    Pause(Duration),
    /// Close the connection.
    Close,
}

fn send(bytes: &[u8]) -> Step {
    Step::Send(vec![bytes.to_vec()])
}

/// Serves one connection with `steps` and returns the lines received.
async fn scripted_server(steps: Vec<Step>) -> (u16, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (read_half, mut write_half) = stream.into_split();
        let mut reader = BufReader::new(read_half);
        let mut received = Vec::new();
        for step in steps {
            match step {
                Step::Send(writes) => {
                    for write in writes {
                        if write_half.write_all(&write).await.is_err() {
                            return received;
                        }
                        let _ = write_half.flush().await;
                    }
                }
                Step::Receive => {
                    let mut line = String::new();
                    match reader.read_line(&mut line).await {
                        Ok(0) | Err(_) => return received,
                        Ok(_) => received.push(line),
                    }
                }
                Step::Pause(duration) => tokio::time::sleep(duration).await,
                Step::Close => return received,
            }
        }
        // Hold the connection open until the client closes it.
        let mut rest = String::new();
        while let Ok(count) = reader.read_line(&mut rest).await {
            if count == 0 {
                break;
            }
            received.push(std::mem::take(&mut rest));
        }
        received
    });
    (port, handle)
}

fn endpoint(port: u16) -> ServerEndpoint {
    ServerEndpoint {
        hostname: "127.0.0.1".to_owned(),
        cli_port: port,
        webadmin_port: 1,
        username: "admin".to_owned(),
        password: Secret::new("s3cret-pw"),
        cli_tls: false,
        tls_verify: true,
        tls_fingerprints: Vec::new(),
        webadmin_enabled: false,
        webadmin_allow_http: false,
    }
}

fn options(reply_timeout: Duration) -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(5),
        reply_timeout,
        max_reply_bytes: 1024 * 1024,
    }
}

const BANNER: &[u8] = b"Welcome to AXIGEN's Command Line Interface\r\n<login> ";
const USER_OK: &[u8] = b"+OK: Enter password\r\n<password> ";
const AUTH_OK: &[u8] = b"+OK: Authentication successful\r\n<#> ";

fn login_steps() -> Vec<Step> {
    vec![
        send(BANNER),
        Step::Receive,
        send(USER_OK),
        Step::Receive,
        send(AUTH_OK),
    ]
}

/// The server side of a whole session, one entry per reply, and the
/// commands the client sends before each reply after the banner.
fn session_replies() -> Vec<(&'static str, Vec<u8>)> {
    let mut list = b"The list of domains:\r\n\r\n\r\n".to_vec();
    list.extend_from_slice(b"\x1b[1mname                 status      accounts\x1b[0m\r\n");
    list.extend_from_slice(b"--------------------------------------------\r\n");
    list.extend_from_slice(b"name-server.com      enabled     2\r\n");
    list.extend_from_slice(b"b\xc3\xbccher.example      disabled    0\r\n");
    list.extend_from_slice(b"\r\n+OK: command successful\r\n\x1b[32m<#> \x1b[0m");

    let mut registry = b"Registry information:\r\n----------------------\r\n".to_vec();
    registry.extend_from_slice(b"Creation Date = Tue, 12 Mar 2019 10:11:12 +0200\r\n");
    registry.extend_from_slice(b"Last login = caf\xe9\r\n");
    registry.extend_from_slice(b"Mbox size = 734003 KB\r\nMbox message count = 5120\r\n\r\n");
    registry.extend_from_slice(b"+OK: command successful\r\n<domain-account#> ");

    vec![
        (
            "",
            [b"\xff\xfb\x01\xff\xfd\x03".as_slice(), BANNER].concat(),
        ),
        ("USER admin", USER_OK.to_vec()),
        ("s3cret-pw", AUTH_OK.to_vec()),
        ("LIST AllDomains", list),
        (
            "UPDATE Domain name \"name-server.com\"",
            b"+OK: command successful\r\n<domain#> ".to_vec(),
        ),
        (
            "UPDATE Account name \"list\"",
            b"+OK: command successful\r\n<domain-account#> ".to_vec(),
        ),
        ("SHOW RegistryInformation", registry),
        (
            "CONFIG Quotas",
            b"+OK: command successful\r\n<domain-account-quotas#> ".to_vec(),
        ),
        (
            "SHOW ATTR totalMessageSize",
            b"totalMessageSize = 2097152 [explicit, overrides inherited value: 1048576]\r\n\
              +OK: command successful\r\n<domain-account-quotas#> "
                .to_vec(),
        ),
        (
            "BACK",
            b"+OK: command successful\r\n<domain-account#> ".to_vec(),
        ),
        ("BACK", b"+OK: command successful\r\n<domain#> ".to_vec()),
        (
            "UPDATE Account name \"ghost\"",
            b"-ERR: Account ghost does not exist\r\n<domain#> ".to_vec(),
        ),
        ("QUIT", b"+OK: have a nice day\r\n".to_vec()),
    ]
}

/// Builds the script of a session whose replies are cut at `cuts` (byte
/// offsets, taken modulo each reply's length).
fn split_session(cuts: &[usize]) -> Vec<Step> {
    let mut steps = Vec::new();
    for (index, (command, reply)) in session_replies().into_iter().enumerate() {
        if !command.is_empty() {
            steps.push(Step::Receive);
        }
        let mut points: Vec<usize> = cuts
            .iter()
            .skip(index * 4)
            .take(4)
            .map(|cut| cut % reply.len())
            .filter(|&cut| cut > 0)
            .collect();
        points.sort_unstable();
        points.dedup();
        let mut writes = Vec::new();
        let mut start = 0;
        for point in points {
            writes.push(reply[start..point].to_vec());
            start = point;
        }
        writes.push(reply[start..].to_vec());
        steps.push(Step::Send(writes));
    }
    steps.push(Step::Close);
    steps
}

/// Runs the scripted session through the typed client and returns what it
/// read, so every split can be compared with the whole-reply run.
async fn run_session(
    steps: Vec<Step>,
) -> (
    Vec<ListedDomain>,
    u64,
    Option<u64>,
    Option<u64>,
    String,
    Vec<String>,
) {
    let (port, server) = scripted_server(steps).await;
    let mut client = CliClient::login(&endpoint(port), &options(Duration::from_secs(5)))
        .await
        .unwrap();
    let domains = client.list_domains().await.unwrap();
    client.enter_domain("name-server.com").await.unwrap();
    client.enter_account("list").await.unwrap();
    let registry = client.registry_information().await.unwrap();
    let quota = client.quota().await.unwrap();
    client.back().await.unwrap();
    let rejected = client.enter_account("ghost").await.unwrap_err();
    let rejected = match rejected {
        CliError::Rejected { status, .. } => status,
        other => panic!("expected a rejection, got {other:?}"),
    };
    client.quit().await;
    let received = server.await.unwrap();
    (
        domains,
        registry.mbox_size_kb,
        registry.message_count,
        quota,
        rejected,
        received,
    )
}

fn expected_commands() -> Vec<String> {
    session_replies()
        .into_iter()
        .filter(|(command, _)| !command.is_empty())
        .map(|(command, _)| format!("{command}\r\n"))
        .collect()
}

#[tokio::test]
async fn session_reads_every_reply_kind() {
    let (domains, used_kb, messages, quota, rejected, received) =
        run_session(split_session(&[])).await;
    assert_eq!(
        domains,
        vec![
            ListedDomain {
                name: "name-server.com".to_owned(),
                status: DomainStatus::Enabled,
            },
            ListedDomain {
                name: "bücher.example".to_owned(),
                status: DomainStatus::Disabled,
            },
        ]
    );
    assert_eq!(used_kb, 734003);
    assert_eq!(messages, Some(5120));
    assert_eq!(quota, Some(2097152));
    assert_eq!(rejected, "-ERR: Account ghost does not exist");
    assert_eq!(received, expected_commands());
}

#[tokio::test]
async fn session_survives_one_byte_writes() {
    // Cut every reply into single bytes.
    let steps = split_session(&[])
        .into_iter()
        .map(|step| match step {
            Step::Send(writes) => {
                Step::Send(writes.concat().into_iter().map(|byte| vec![byte]).collect())
            }
            other => other,
        })
        .collect();
    let whole = run_session(split_session(&[])).await;
    assert_eq!(run_session(steps).await, whole);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_split_reads_same_replies(cuts in proptest::collection::vec(0usize..4096, 0..60)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let whole = runtime.block_on(run_session(split_session(&[])));
        let split = runtime.block_on(run_session(split_session(&cuts)));
        prop_assert_eq!(split, whole);
    }
}

#[tokio::test]
async fn login_without_user_status_line() {
    let steps = vec![
        send(b"Welcome to AXIGEN's Command Line Interface\r\nYou must login first.\r\n<login> "),
        Step::Receive,
        send(b"<password> "),
        Step::Receive,
        send(AUTH_OK),
    ];
    let (port, server) = scripted_server(steps).await;
    let mut connection = Connection::connect(&endpoint(port), &options(Duration::from_secs(5)))
        .await
        .unwrap();
    connection
        .login("admin", &Secret::new("s3cret-pw"))
        .await
        .unwrap();
    assert_eq!(connection.prompt(), "#");
    drop(connection);
    assert_eq!(
        server.await.unwrap(),
        vec!["USER admin\r\n", "s3cret-pw\r\n"]
    );
}

#[tokio::test]
async fn wrong_password_fails_at_once() {
    let steps = vec![
        send(BANNER),
        Step::Receive,
        send(USER_OK),
        Step::Receive,
        send(b"-ERR: Authentication failed\r\n<login> "),
    ];
    let (port, server) = scripted_server(steps).await;
    let error = CliClient::login(&endpoint(port), &options(Duration::from_secs(5)))
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, CliError::AuthenticationFailed { .. }),
        "{error:?}"
    );
    assert!(message.contains("-ERR: Authentication failed"), "{message}");
    assert!(!message.contains("s3cret-pw"), "{message}");
    assert!(!format!("{error:?}").contains("s3cret-pw"));
    // One USER and one password line: no second attempt.
    assert_eq!(server.await.unwrap().len(), 2);
}

#[tokio::test]
async fn rejected_user_is_authentication_failure() {
    let steps = vec![
        send(BANNER),
        Step::Receive,
        send(b"-ERR: Unknown user\r\n<login> "),
    ];
    let (port, _server) = scripted_server(steps).await;
    let error = CliClient::login(&endpoint(port), &options(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(
        matches!(error, CliError::AuthenticationFailed { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn silent_server_times_out() {
    let mut steps = login_steps();
    steps.push(Step::Receive);
    steps.push(send(b"partial line without end"));
    steps.push(Step::Pause(Duration::from_secs(30)));
    let (port, _server) = scripted_server(steps).await;
    let mut client = CliClient::login(&endpoint(port), &options(Duration::from_millis(300)))
        .await
        .unwrap();

    let started = Instant::now();
    let error = client.list_domains().await.unwrap_err();
    assert!(matches!(error, CliError::TimedOut { .. }), "{error:?}");
    assert!(error.is_connection_lost());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn trickling_reply_resets_idle_timeout() {
    // Each write comes 150 ms after the last, so the reply takes about
    // 1.2 s in all, four times the 300 ms idle timeout.
    let mut steps = login_steps();
    steps.push(Step::Receive);
    for part in [
        "name\r\n",
        "-----\r\n",
        "a.example\r\n",
        "\r\n",
        "+OK: done\r\n",
        "<",
        "#>",
        " ",
    ] {
        steps.push(Step::Pause(Duration::from_millis(150)));
        steps.push(send(part.as_bytes()));
    }
    let (port, _server) = scripted_server(steps).await;
    let mut connection = Connection::connect(&endpoint(port), &options(Duration::from_millis(300)))
        .await
        .unwrap();
    connection
        .login("admin", &Secret::new("s3cret-pw"))
        .await
        .unwrap();
    let reply = connection.command("LIST Domains").await.unwrap();
    assert_eq!(
        reply,
        Reply {
            lines: vec![
                "name".to_owned(),
                "-----".to_owned(),
                "a.example".to_owned(),
                String::new()
            ],
            status: "+OK: done".to_owned(),
            prompt: "#".to_owned(),
        }
    );
}

#[tokio::test]
async fn prompt_without_status_is_protocol_error() {
    let mut steps = login_steps();
    steps.push(Step::Receive);
    steps.push(send(b"some text\r\n<#> "));
    let (port, _server) = scripted_server(steps).await;
    let mut connection = Connection::connect(&endpoint(port), &options(Duration::from_millis(300)))
        .await
        .unwrap();
    connection
        .login("admin", &Secret::new("s3cret-pw"))
        .await
        .unwrap();
    let error = connection.command("LIST Domains").await.unwrap_err();
    assert!(
        matches!(error, CliError::Protocol { ref line, .. } if line == "<#> "),
        "{error:?}"
    );
}

#[tokio::test]
async fn close_mid_reply_is_closed_error() {
    let mut steps = login_steps();
    steps.push(Step::Receive);
    steps.push(send(b"name\r\n-----\r\na.exam"));
    steps.push(Step::Close);
    let (port, _server) = scripted_server(steps).await;
    let mut client = CliClient::login(&endpoint(port), &options(Duration::from_secs(5)))
        .await
        .unwrap();
    let error = client.list_domains().await.unwrap_err();
    assert!(matches!(error, CliError::Closed { .. }), "{error:?}");
    assert!(error.to_string().contains("a.exam"), "{error}");
}

#[tokio::test]
async fn close_after_banner_is_closed_error() {
    let (port, _server) = scripted_server(vec![
        send(b"Welcome to AXIGEN's Command Line Interface\r\n"),
        Step::Close,
    ])
    .await;
    let error = Connection::connect(&endpoint(port), &options(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(matches!(error, CliError::Closed { .. }), "{error:?}");
}

#[tokio::test]
async fn oversized_reply_is_rejected() {
    let mut steps = login_steps();
    steps.push(Step::Receive);
    let row = b"a-very-long-domain-name.example   enabled\r\n";
    steps.push(Step::Send(vec![row.repeat(40_000)]));
    let (port, _server) = scripted_server(steps).await;
    let mut connection = Connection::connect(&endpoint(port), &options(Duration::from_secs(5)))
        .await
        .unwrap();
    connection
        .login("admin", &Secret::new("s3cret-pw"))
        .await
        .unwrap();
    let error = connection.command("LIST Domains").await.unwrap_err();
    assert!(
        matches!(error, CliError::ReplyTooLarge { limit: 1_048_576 }),
        "{error:?}"
    );
}

#[tokio::test]
async fn refused_connection_is_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let error = Connection::connect(&endpoint(port), &options(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(matches!(error, CliError::Connect { .. }), "{error:?}");
}

#[tokio::test]
async fn show_fallback_and_unlimited_quota() {
    let mut steps = login_steps();
    let replies: [&[u8]; 7] = [
        b"+OK: command successful\r\n<domain#> ",
        b"+OK: command successful\r\n<domain-account#> ",
        b"+OK: command successful\r\n<domain-account-quotas#> ",
        b"-ERR: Unknown command\r\n<domain-account-quotas#> ",
        b"Quotas:\r\n-------\r\nmaxFolders = 0\r\n   totalMessageSize  =  \"0\"\r\n\r\n+OK: command successful\r\n<domain-account-quotas#> ",
        b"+OK: command successful\r\n<domain-account#> ",
        b"+OK: command successful\r\n<domain#> ",
    ];
    for reply in replies {
        steps.push(Step::Receive);
        steps.push(send(reply));
    }
    let (port, server) = scripted_server(steps).await;
    let mut client = CliClient::login(&endpoint(port), &options(Duration::from_secs(5)))
        .await
        .unwrap();
    client.enter_domain("a.example").await.unwrap();
    client.enter_account("bob").await.unwrap();
    assert_eq!(client.quota().await.unwrap(), None);
    client.back().await.unwrap();
    assert_eq!(client.rejected_count(), 1);
    drop(client);

    let received = server.await.unwrap();
    assert_eq!(
        received[2..],
        [
            "UPDATE Domain name \"a.example\"\r\n",
            "UPDATE Account name \"bob\"\r\n",
            "CONFIG Quotas\r\n",
            "SHOW ATTR totalMessageSize\r\n",
            "SHOW\r\n",
            "BACK\r\n",
            "BACK\r\n",
        ]
    );
}
