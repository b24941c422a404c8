//! The default behavior produces the documented session shape, byte for
//! byte.

mod common;

use axigen_sim::{SimOptions, SimServer};
use common::{RawClient, example_data};

/// Each step: the line the client sends (None for the banner) and the exact
/// bytes the server replies with.
const SESSION: &[(Option<&str>, &str)] = &[
    (
        None,
        "Welcome to AXIGEN's Command Line Interface\r\n<login> ",
    ),
    (Some("USER admin"), "+OK: Enter password\r\n<password> "),
    (Some("secret"), "+OK: Authentication successful\r\n<#> "),
    (
        Some("LIST AllDomains"),
        "The list of domains:\r\n\
         \r\n\
         \r\n\
         name                            status      accounts\r\n\
         ------------------------------------------------------\r\n\
         example.com                     enabled     2\r\n\
         old.example                     disabled    0\r\n\
         \r\n\
         +OK: command successful\r\n\
         <#> ",
    ),
    (
        Some("UPDATE Domain name \"example.com\""),
        "+OK: command successful\r\n<domain#> ",
    ),
    (
        Some("LIST Accounts"),
        "The list of accounts:\r\n\
         \r\n\
         \r\n\
         name\r\n\
         ------------------------------------------------------\r\n\
         alice\r\n\
         postmaster\r\n\
         \r\n\
         +OK: command successful\r\n\
         <domain#> ",
    ),
    (
        Some("UPDATE Account name \"alice\""),
        "+OK: command successful\r\n<domain-account#> ",
    ),
    (
        Some("SHOW RegistryInformation"),
        "Registry information:\r\n\
         ---------------------\r\n\
         Creation Date = Sat, 02 Oct 2021 08:36:22 +0200\r\n\
         Mbox size = 734003\r\n\
         Mbox message count = 5120\r\n\
         Mbox folder count = 11\r\n\
         \r\n\
         +OK: command successful\r\n\
         <domain-account#> ",
    ),
    (
        Some("CONFIG Quotas"),
        "+OK: command successful\r\n<domain-account-quotas#> ",
    ),
    (
        Some("SHOW ATTR totalMessageSize"),
        "totalMessageSize = 1048576\r\n+OK: command successful\r\n<domain-account-quotas#> ",
    ),
    (
        Some("BACK"),
        "+OK: command successful\r\n<domain-account#> ",
    ),
    (Some("BACK"), "+OK: command successful\r\n<domain#> "),
    (Some("BACK"), "+OK: command successful\r\n<#> "),
    (Some("QUIT"), "+OK: have a nice day\r\n"),
];

#[tokio::test]
async fn default_session_matches_documented_shape() {
    let server = SimServer::start(example_data(), SimOptions::default())
        .await
        .unwrap();
    let mut client = RawClient::connect(server.cli_addr()).await;

    for (index, (command, expected)) in SESSION.iter().enumerate() {
        if let Some(command) = command {
            client.send(command).await;
        }
        let received = if index == SESSION.len() - 1 {
            client.read_to_close().await
        } else {
            client.read_reply().await
        };
        assert_eq!(
            String::from_utf8(received).unwrap(),
            *expected,
            "reply to {command:?}"
        );
    }

    let stats = server.stats();
    assert_eq!(stats.logins_succeeded, 1);
    assert_eq!(stats.writing_commands, 0);
    assert_eq!(stats.command_count("BACK"), 3);
    assert_eq!(stats.command_count("list"), 2);
    server.shutdown().await;
}
