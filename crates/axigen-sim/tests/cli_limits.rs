//! Session limits, faults that close connections, and the count of writing
//! commands.

mod common;

use std::time::Duration;

use axigen_sim::{Behavior, MidReplyTrigger, ServerData, SimHandle, SimOptions, SimServer};
use common::{RawClient, example_data};

async fn start(data: ServerData, behavior: Behavior) -> SimHandle {
    let options = SimOptions {
        behavior,
        ..SimOptions::default()
    };
    SimServer::start(data, options).await.unwrap()
}

#[tokio::test]
async fn writing_commands_are_rejected_and_counted() {
    let server = start(example_data(), Behavior::default()).await;
    let mut client = RawClient::connect(server.cli_addr()).await;
    client.login().await;

    let writing = [
        "COMMIT",
        "done",
        "SET totalMessageSize 1",
        "ADD Domain name x.example",
        "CREATE Domain name y.example",
        "DELETE Domain name example.com",
    ];
    for command in writing {
        let reply = client.command(command).await;
        assert!(reply.starts_with("-ERR: "), "{command}: {reply:?}");
        assert!(reply.ends_with("\r\n<#> "), "{command}: {reply:?}");
    }
    // Session settings are not writing commands.
    client.command("SET CONSOLE-CODES off").await;
    client.command("SET QUIET off").await;

    let stats = server.stats();
    assert_eq!(stats.writing_commands, writing.len() as u64);
    assert_eq!(stats.writing_command_lines, writing);
    assert_eq!(stats.command_count("SET"), 3);
    // Nothing was changed: the domain is still there.
    assert_eq!(server.data(), example_data());
}

#[tokio::test]
async fn wrong_password_returns_to_login() {
    let server = start(example_data(), Behavior::default()).await;
    let mut client = RawClient::connect(server.cli_addr()).await;
    client.read_reply().await;
    client.command("USER admin").await;
    assert_eq!(
        client.command("wrong").await,
        "-ERR: Authentication failed\r\n<login> "
    );
    client.command("USER admin").await;
    assert_eq!(
        client.command("secret").await,
        "+OK: Authentication successful\r\n<#> "
    );
    let stats = server.stats();
    assert_eq!(stats.logins_failed, 1);
    assert_eq!(stats.logins_succeeded, 1);
    // Password lines never count as commands.
    assert_eq!(stats.commands.values().sum::<u64>(), 2);
}

#[tokio::test]
async fn auth_errors_over_limit_close_connection() {
    let server = start(example_data(), Behavior::default()).await;
    let mut client = RawClient::connect(server.cli_addr()).await;
    client.read_reply().await;
    for _ in 0..5 {
        client.command("USER admin").await;
        assert_eq!(
            client.command("wrong").await,
            "-ERR: Authentication failed\r\n<login> "
        );
    }
    client.command("USER admin").await;
    client.send("wrong").await;
    let last = client.read_to_close().await;
    assert_eq!(
        last,
        b"-ERR: Authentication failed\r\n-ERR: Too many authentication errors, closing connection\r\n"
    );
    let stats = server.stats();
    assert_eq!(stats.logins_failed, 6);
    assert_eq!(stats.sessions_closed_by_limit, 1);
}

#[tokio::test]
async fn commands_before_login_over_limit_close_connection() {
    let server = start(example_data(), Behavior::default()).await;
    let mut client = RawClient::connect(server.cli_addr()).await;
    client.read_reply().await;
    for _ in 0..20 {
        let reply = client.command("GET VERSION").await;
        assert!(reply.ends_with("<login> "), "{reply:?}");
    }
    client.send("GET VERSION").await;
    assert_eq!(
        client.read_to_close().await,
        b"-ERR: Too many commands before login, closing connection\r\n"
    );
}

#[tokio::test]
async fn commands_before_login_need_login() {
    let server = start(example_data(), Behavior::default()).await;
    let mut client = RawClient::connect(server.cli_addr()).await;
    client.read_reply().await;
    assert_eq!(
        client.command("LIST Domains").await,
        "-ERR: You must login first\r\n<login> "
    );
    let help = client.command("HELP").await;
    assert!(help.contains("USER <name>"), "{help:?}");
    let show = client.command("SHOW").await;
    assert!(show.contains("\r\nconsoleCodes = off\r\n"), "{show:?}");
    client.send("EXIT").await;
    assert_eq!(client.read_to_close().await, b"+OK: have a nice day\r\n");
}

#[tokio::test]
async fn max_errors_reached_closes_connection() {
    let behavior = Behavior {
        max_errors: 3,
        ..Behavior::default()
    };
    let server = start(example_data(), behavior).await;
    let mut client = RawClient::connect(server.cli_addr()).await;
    client.login().await;
    for _ in 0..2 {
        assert_eq!(
            client.command("BOGUS").await,
            "-ERR: Unknown command\r\n<#> "
        );
    }
    client.send("BOGUS").await;
    assert_eq!(client.read_to_close().await, b"-ERR: Unknown command\r\n");
    assert_eq!(server.stats().sessions_closed_by_limit, 1);
}

#[tokio::test]
async fn default_max_errors_is_twenty() {
    let server = start(example_data(), Behavior::default()).await;
    let mut client = RawClient::connect(server.cli_addr()).await;
    client.login().await;
    for _ in 0..19 {
        client.command("UPDATE Domain missing.example").await;
    }
    client.send("UPDATE Domain missing.example").await;
    let last = client.read_to_close().await;
    assert!(last.starts_with(b"-ERR: "), "{last:?}");
    assert!(!last.ends_with(b"> "), "{last:?}");
}

#[tokio::test]
async fn idle_timeout_closes_silently() {
    let behavior = Behavior {
        idle_timeout: Duration::from_millis(200),
        ..Behavior::default()
    };
    let server = start(example_data(), behavior).await;
    let mut client = RawClient::connect(server.cli_addr()).await;
    client.login().await;
    assert_eq!(client.read_to_close().await, b"");
    assert_eq!(server.stats().sessions_timed_out, 1);
}

#[tokio::test]
async fn close_on_accept_sends_nothing() {
    let behavior = Behavior {
        close_on_accept: true,
        ..Behavior::default()
    };
    let server = start(example_data(), behavior).await;
    let mut client = RawClient::connect(server.cli_addr()).await;
    assert_eq!(client.read_to_close().await, b"");
    assert_eq!(server.stats().cli_connections, 1);
}

#[tokio::test]
async fn session_limit_closes_extra_connections() {
    let behavior = Behavior {
        max_sessions: Some(1),
        ..Behavior::default()
    };
    let server = start(example_data(), behavior).await;
    let mut first = RawClient::connect(server.cli_addr()).await;
    first.read_reply().await;
    let mut second = RawClient::connect(server.cli_addr()).await;
    assert_eq!(second.read_to_close().await, b"");
    assert_eq!(server.stats().cli_sessions_active, 1);
    assert_eq!(server.stats().cli_sessions_peak, 1);

    // Once the first session ends, a new one is served.
    first.send("QUIT").await;
    first.read_to_close().await;
    let closed = async {
        while server.stats().cli_sessions_active > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(common::WAIT, closed).await.unwrap();
    let mut third = RawClient::connect(server.cli_addr()).await;
    third.login().await;
}

#[tokio::test]
async fn close_mid_reply_on_command_sends_half() {
    let normal = start(example_data(), Behavior::default()).await;
    let mut client = RawClient::connect(normal.cli_addr()).await;
    client.login().await;
    client.send("LIST AllDomains").await;
    let full = client.read_reply().await;

    let behavior = Behavior {
        close_mid_reply: Some(MidReplyTrigger::OnCommand("list alldomains".to_string())),
        ..Behavior::default()
    };
    let server = start(example_data(), behavior).await;
    let mut client = RawClient::connect(server.cli_addr()).await;
    client.login().await;
    client.send("LIST AllDomains").await;
    let cut = client.read_to_close().await;
    assert_eq!(cut, full[..full.len() / 2]);
    assert_eq!(server.stats().mid_reply_closes, 1);
}

#[tokio::test]
async fn close_mid_reply_after_replies_fires_limited_times() {
    let behavior = Behavior {
        close_mid_reply: Some(MidReplyTrigger::AfterReplies(2)),
        close_mid_reply_times: Some(1),
        ..Behavior::default()
    };
    let server = start(example_data(), behavior).await;
    let mut client = RawClient::connect(server.cli_addr()).await;
    client.login().await;
    client.command("GET VERSION").await;
    client.command("GET VERSION").await;
    client.send("LIST AllDomains").await;
    let cut = client.read_to_close().await;
    assert!(cut.starts_with(b"The list of domains:"), "{cut:?}");
    assert!(!cut.ends_with(b"<#> "), "{cut:?}");

    // The one allowed cut is used up: the next session is whole.
    let mut client = RawClient::connect(server.cli_addr()).await;
    client.login().await;
    client.command("GET VERSION").await;
    client.command("GET VERSION").await;
    let reply = client.command("LIST AllDomains").await;
    assert!(
        reply.ends_with("+OK: command successful\r\n<#> "),
        "{reply:?}"
    );
    assert_eq!(server.stats().mid_reply_closes, 1);
}

#[tokio::test]
async fn shutdown_closes_open_sessions() {
    let server = start(example_data(), Behavior::default()).await;
    let mut client = RawClient::connect(server.cli_addr()).await;
    client.login().await;
    let addr = server.cli_addr();
    server.shutdown().await;
    assert_eq!(client.read_to_close().await, b"");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
