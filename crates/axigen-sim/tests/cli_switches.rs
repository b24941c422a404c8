//! Each CLI behavior switch changes the replies the way it promises.

mod common;

use axigen_sim::{
    Behavior, Chunking, LatencyKind, MboxSizeUnit, ServerData, SimHandle, SimOptions, SimServer,
    Underline, UnlimitedQuota,
};
use common::{RawClient, example_data, unit_data};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

async fn start(data: ServerData, behavior: Behavior) -> SimHandle {
    let options = SimOptions {
        behavior,
        ..SimOptions::default()
    };
    SimServer::start(data, options).await.unwrap()
}

async fn logged_in(server: &SimHandle) -> RawClient<TcpStream> {
    let mut client = RawClient::connect(server.cli_addr()).await;
    client.login().await;
    client
}

/// Logs in, enters `domain` and `account` and returns the client there.
async fn in_account(server: &SimHandle, domain: &str, account: &str) -> RawClient<TcpStream> {
    let mut client = logged_in(server).await;
    let reply = client
        .command(&format!("UPDATE Domain name \"{domain}\""))
        .await;
    assert_eq!(reply, "+OK: command successful\r\n<domain#> ");
    let reply = client
        .command(&format!("UPDATE Account name \"{account}\""))
        .await;
    assert_eq!(reply, "+OK: command successful\r\n<domain-account#> ");
    client
}

async fn mbox_size_line(server: &SimHandle, account: &str) -> String {
    let mut client = in_account(server, "name-server.com", account).await;
    let reply = client.command("SHOW RegistryInformation").await;
    reply
        .lines()
        .find(|line| line.starts_with("Mbox size = "))
        .unwrap_or_else(|| panic!("no Mbox size line in {reply:?}"))
        .to_string()
}

#[tokio::test]
async fn two_line_banner_adds_second_line() {
    let behavior = Behavior {
        two_line_banner: true,
        ..Behavior::default()
    };
    let server = start(example_data(), behavior).await;
    let mut client = RawClient::connect(server.cli_addr()).await;
    let banner = client.read_reply().await;
    assert_eq!(
        banner,
        b"Welcome to AXIGEN's Command Line Interface\r\nYou must login first.\r\n<login> "
    );
}

#[tokio::test]
async fn user_without_status_line_sends_prompt_alone() {
    let behavior = Behavior {
        user_status_line: false,
        ..Behavior::default()
    };
    let server = start(example_data(), behavior).await;
    let mut client = RawClient::connect(server.cli_addr()).await;
    client.read_reply().await;
    assert_eq!(client.command("USER admin").await, "<password> ");
    assert_eq!(
        client.command("secret").await,
        "+OK: Authentication successful\r\n<#> "
    );
}

#[tokio::test]
async fn telnet_iac_bytes_precede_banner_and_wrap_password() {
    let behavior = Behavior {
        telnet_iac: true,
        ..Behavior::default()
    };
    let server = start(example_data(), behavior).await;
    let mut client = RawClient::connect(server.cli_addr()).await;
    let banner = client.read_reply().await;
    assert!(banner.starts_with(&[0xff, 0xfb, 0x01]), "banner {banner:?}");
    assert!(banner.ends_with(b"Welcome to AXIGEN's Command Line Interface\r\n<login> "));
    client.send("USER admin").await;
    let password_prompt = client.read_reply().await;
    assert_eq!(
        password_prompt,
        b"+OK: Enter password\r\n\xff\xfb\x01<password> "
    );
    client.send("secret").await;
    let login = client.read_reply().await;
    assert_eq!(login, b"\xff\xfc\x01+OK: Authentication successful\r\n<#> ");
}

#[tokio::test]
async fn console_codes_wrap_prompts_until_turned_off() {
    let behavior = Behavior {
        console_codes: true,
        ..Behavior::default()
    };
    let server = start(example_data(), behavior).await;
    let mut client = RawClient::connect(server.cli_addr()).await;
    let banner = client.read_until(b"\x1b[0m ").await;
    assert_eq!(
        banner,
        b"\x1b[1mWelcome to AXIGEN's Command Line Interface\x1b[0m\r\n\x1b[1;34m<login>\x1b[0m "
    );
    client.send("GET VERSION").await;
    let version = client.read_until(b"\x1b[0m ").await;
    assert_eq!(
        version,
        b"10.6.30|Linux|x86_64\r\n\x1b[32m+OK:\x1b[0m command successful\r\n\x1b[1;34m<login>\x1b[0m "
    );
    client.send("SET CONSOLE-CODES off").await;
    assert_eq!(
        client.read_reply().await,
        b"+OK: command successful\r\n<login> "
    );
    assert_eq!(server.stats().writing_commands, 0);
}

#[tokio::test]
async fn quiet_lists_rows_only() {
    let behavior = Behavior {
        quiet: true,
        ..Behavior::default()
    };
    let server = start(example_data(), behavior).await;
    let mut client = logged_in(&server).await;
    let reply = client.command("LIST AllDomains").await;
    assert_eq!(
        reply,
        "example.com                     enabled     2\r\n\
         old.example                     disabled    0\r\n\
         +OK: command successful\r\n<#> "
    );
    client.command("SET QUIET off").await;
    let reply = client.command("LIST AllDomains").await;
    assert!(reply.starts_with("The list of domains:\r\n"), "{reply:?}");
}

#[tokio::test]
async fn set_quiet_on_switches_a_session_to_rows() {
    let server = start(example_data(), Behavior::default()).await;
    let mut client = logged_in(&server).await;
    assert_eq!(
        client.command("set quiet ON").await,
        "+OK: command successful\r\n<#> "
    );
    client.command("UPDATE Domain example.com").await;
    assert_eq!(
        client.command("LIST Accounts").await,
        "alice\r\npostmaster\r\n+OK: command successful\r\n<domain#> "
    );
}

#[tokio::test]
async fn equals_underline_replaces_dashes() {
    let behavior = Behavior {
        underline: Underline::Equals,
        ..Behavior::default()
    };
    let server = start(example_data(), behavior).await;
    let mut client = logged_in(&server).await;
    let reply = client.command("LIST AllDomains").await;
    let underline = "=".repeat(54);
    assert!(
        reply.contains(&format!("accounts\r\n{underline}\r\n")),
        "{reply:?}"
    );
    assert!(!reply.contains("---"), "{reply:?}");
}

#[tokio::test]
async fn narrow_columns_keep_one_space() {
    let behavior = Behavior {
        name_column_width: 6,
        ..Behavior::default()
    };
    let server = start(example_data(), behavior).await;
    let mut client = logged_in(&server).await;
    let reply = client.command("LIST AllDomains").await;
    assert!(
        reply.contains("\r\nname  status      accounts\r\n"),
        "{reply:?}"
    );
    assert!(
        reply.contains("\r\nexample.com enabled     2\r\n"),
        "{reply:?}"
    );
}

#[tokio::test]
async fn wide_columns_pad_names() {
    let behavior = Behavior {
        name_column_width: 60,
        ..Behavior::default()
    };
    let server = start(example_data(), behavior).await;
    let mut client = logged_in(&server).await;
    let reply = client.command("LIST AllDomains").await;
    let row = format!("\r\nexample.com{}enabled     2\r\n", " ".repeat(49));
    assert!(reply.contains(&row), "{reply:?}");
    // The underline grows with the header.
    assert!(
        reply.contains(&format!("\r\n{}\r\n", "-".repeat(80))),
        "{reply:?}"
    );
}

#[tokio::test]
async fn extra_columns_move_status_last() {
    let behavior = Behavior {
        extra_columns: true,
        ..Behavior::default()
    };
    let server = start(example_data(), behavior).await;
    let mut client = logged_in(&server).await;
    let reply = client.command("LIST AllDomains").await;
    assert!(
        reply.contains(
            "\r\nname                            accounts  usedKB        quotaKB       status\r\n"
        ),
        "{reply:?}"
    );
    assert!(
        reply.contains(
            "\r\nexample.com                     2         734003        1048576       enabled\r\n"
        ),
        "{reply:?}"
    );
    client.command("UPDATE Domain \"example.com\"").await;
    let reply = client.command("LIST Accounts").await;
    assert!(
        reply.contains("\r\nname                            status      created\r\n"),
        "{reply:?}"
    );
    assert!(reply.contains("\r\nalice                           enabled     2021-10-02\r\n"));
}

#[tokio::test]
async fn domain_name_only_drops_other_columns() {
    let behavior = Behavior {
        domain_name_only: true,
        ..Behavior::default()
    };
    let server = start(example_data(), behavior).await;
    let mut client = logged_in(&server).await;
    let reply = client.command("LIST AllDomains").await;
    assert_eq!(
        reply,
        format!(
            "The list of domains:\r\n\r\n\r\nname\r\n{}\r\nexample.com\r\nold.example\r\n\r\n\
             +OK: command successful\r\n<#> ",
            "-".repeat(54)
        )
    );
}

#[tokio::test]
async fn no_list_all_domains_leaves_enabled_ones() {
    let behavior = Behavior {
        no_list_all_domains: true,
        ..Behavior::default()
    };
    let server = start(example_data(), behavior).await;
    let mut client = logged_in(&server).await;
    let reply = client.command("LIST AllDomains").await;
    assert!(reply.starts_with("-ERR: "), "{reply:?}");
    let reply = client.command("LIST Domains").await;
    assert!(reply.contains("\r\nexample.com "), "{reply:?}");
    assert!(!reply.contains("old.example"), "{reply:?}");
}

#[tokio::test]
async fn list_domains_without_switch_hides_disabled() {
    let server = start(example_data(), Behavior::default()).await;
    let mut client = logged_in(&server).await;
    let reply = client.command("LIST Domains").await;
    assert!(!reply.contains("old.example"), "{reply:?}");
    let reply = client.command("LIST AllDomains old*").await;
    assert!(reply.contains("\r\nold.example "), "{reply:?}");
    assert!(!reply.contains("example.com"), "{reply:?}");
}

#[tokio::test]
async fn mbox_size_units_equal_kb_figure() {
    let cases = [
        (MboxSizeUnit::Bare, false, "odd", "Mbox size = 1500"),
        (MboxSizeUnit::Kb, false, "odd", "Mbox size = 1500 KB"),
        (MboxSizeUnit::Bytes, false, "odd", "Mbox size = 1536000 B"),
        (MboxSizeUnit::Mb, false, "odd", "Mbox size = 1500 KB"),
        (MboxSizeUnit::Mb, false, "whole-mb", "Mbox size = 2 MB"),
        (MboxSizeUnit::Mb, false, "whole-gb", "Mbox size = 2048 MB"),
        (MboxSizeUnit::Gb, false, "whole-gb", "Mbox size = 2 GB"),
        (MboxSizeUnit::Gb, false, "whole-mb", "Mbox size = 2 MB"),
        (MboxSizeUnit::Gb, true, "whole-gb", "Mbox size = 2 gb"),
        (MboxSizeUnit::Kb, true, "name", "Mbox size = 0 kb"),
    ];
    for (unit, lowercase, account, expected) in cases {
        let behavior = Behavior {
            mbox_size_unit: unit,
            mbox_size_unit_lowercase: lowercase,
            ..Behavior::default()
        };
        let server = start(unit_data(), behavior).await;
        assert_eq!(
            mbox_size_line(&server, account).await,
            expected,
            "unit {unit:?}, lowercase {lowercase}"
        );
        server.shutdown().await;
    }
}

#[tokio::test]
async fn quota_notes_follow_value() {
    let behavior = Behavior {
        quota_notes: true,
        ..Behavior::default()
    };
    let server = start(unit_data(), behavior).await;
    let mut client = in_account(&server, "NAME-SERVER.COM", "name").await;
    client.command("CONFIG Quotas").await;
    assert_eq!(
        client.command("SHOW ATTR totalMessageSize").await,
        "totalMessageSize = 2097152 [explicit, overrides inherited value: 1048576]\r\n\
         +OK: command successful\r\n<domain-account-quotas#> "
    );
    client.command("BACK").await;
    client.command("BACK").await;
    client.command("UPDATE Account odd").await;
    client.command("CONFIG Quotas").await;
    assert_eq!(
        client.command("SHOW ATTR totalMessageSize").await,
        "totalMessageSize = 1048576 [inherited]\r\n+OK: command successful\r\n<domain-account-quotas#> "
    );
}

#[tokio::test]
async fn unlimited_quota_shown_as_zero() {
    let server = start(unit_data(), Behavior::default()).await;
    let mut client = in_account(&server, "name-server.com", "whole-gb").await;
    client.command("CONFIG Quotas").await;
    assert_eq!(
        client.command("SHOW ATTR totalMessageSize").await,
        "totalMessageSize = 0\r\n+OK: command successful\r\n<domain-account-quotas#> "
    );
    let show = client.command("SHOW").await;
    assert!(show.contains("\r\ntotalMessageSize = 0\r\n"), "{show:?}");
}

#[tokio::test]
async fn unlimited_quota_missing_leaves_attribute_out() {
    let behavior = Behavior {
        unlimited_quota: UnlimitedQuota::Missing,
        ..Behavior::default()
    };
    let server = start(unit_data(), behavior).await;
    let mut client = in_account(&server, "name-server.com", "whole-gb").await;
    client.command("CONFIG Quotas").await;
    assert_eq!(
        client.command("SHOW ATTR totalMessageSize").await,
        "+OK: command successful\r\n<domain-account-quotas#> "
    );
    let show = client.command("SHOW").await;
    assert!(!show.contains("totalMessageSize"), "{show:?}");
    assert!(show.contains("\r\nmaxMessageSize = 51200\r\n"), "{show:?}");
}

#[tokio::test]
async fn vanished_domain_rejects_update() {
    let behavior = Behavior {
        vanished_domains: vec!["EXAMPLE.com".to_string()],
        ..Behavior::default()
    };
    let server = start(example_data(), behavior).await;
    let mut client = logged_in(&server).await;
    let listed = client.command("LIST AllDomains").await;
    assert!(listed.contains("\r\nexample.com "), "{listed:?}");
    let reply = client.command("UPDATE Domain name \"example.com\"").await;
    assert!(reply.starts_with("-ERR: "), "{reply:?}");
    assert!(reply.ends_with("\r\n<#> "), "{reply:?}");
    let reply = client.command("UPDATE Domain name \"old.example\"").await;
    assert_eq!(reply, "+OK: command successful\r\n<domain#> ");
}

#[tokio::test]
async fn vanished_account_rejects_update() {
    let behavior = Behavior {
        vanished_accounts: vec!["Alice@Example.com".to_string()],
        ..Behavior::default()
    };
    let server = start(example_data(), behavior).await;
    let mut client = logged_in(&server).await;
    client.command("UPDATE Domain name \"example.com\"").await;
    let listed = client.command("LIST Accounts").await;
    assert!(listed.contains("\r\nalice\r\n"), "{listed:?}");
    let reply = client.command("UPDATE Account name \"alice\"").await;
    assert!(reply.starts_with("-ERR: "), "{reply:?}");
    assert!(reply.ends_with("\r\n<domain#> "), "{reply:?}");
    let reply = client.command("UPDATE Account name \"postmaster\"").await;
    assert_eq!(reply, "+OK: command successful\r\n<domain-account#> ");
}

#[tokio::test]
async fn registry_error_fails_one_account() {
    let behavior = Behavior {
        registry_errors: vec!["alice@example.com".to_string()],
        ..Behavior::default()
    };
    let server = start(example_data(), behavior).await;
    let mut client = in_account(&server, "example.com", "alice").await;
    let reply = client.command("SHOW RegistryInformation").await;
    assert!(reply.starts_with("-ERR: "), "{reply:?}");
    assert!(reply.ends_with("\r\n<domain-account#> "), "{reply:?}");
    client.command("BACK").await;
    client.command("UPDATE Account postmaster").await;
    let reply = client.command("SHOW RegistryInformation").await;
    assert!(reply.contains("\r\nMbox size = 0\r\n"), "{reply:?}");
}

#[tokio::test]
async fn invalid_utf8_appears_in_titles_and_registry() {
    let behavior = Behavior {
        invalid_utf8: true,
        ..Behavior::default()
    };
    let server = start(example_data(), behavior).await;
    let mut client = logged_in(&server).await;
    client.send("LIST AllDomains").await;
    let reply = client.read_reply().await;
    assert!(reply.starts_with(b"The list of domains: (\xdcbersicht)\r\n"));
    assert!(std::str::from_utf8(&reply).is_err());
    client.send("UPDATE Domain example.com").await;
    client.read_reply().await;
    client.send("UPDATE Account alice").await;
    client.read_reply().await;
    client.send("SHOW RegistryInformation").await;
    let reply = client.read_reply().await;
    let text = String::from_utf8_lossy(&reply);
    assert!(text.contains("\r\nMbox size = 734003\r\n"), "{text:?}");
    assert!(
        reply
            .windows(b"J\xfcrgen".len())
            .any(|window| window == b"J\xfcrgen")
    );
}

#[tokio::test]
async fn one_byte_chunking_writes_every_byte_apart() {
    let behavior = Behavior {
        chunking: Chunking::OneByte,
        ..Behavior::default()
    };
    let server = start(example_data(), behavior).await;
    let mut client = RawClient::connect(server.cli_addr()).await;
    let banner = client.read_reply().await;
    assert_eq!(
        banner,
        b"Welcome to AXIGEN's Command Line Interface\r\n<login> "
    );
    assert_eq!(server.stats().cli_writes, banner.len() as u64);
}

#[tokio::test]
async fn random_chunking_keeps_bytes_and_splits_writes() {
    let whole = start(example_data(), Behavior::default()).await;
    let mut client = logged_in(&whole).await;
    let expected = client.command("LIST AllDomains").await;

    let behavior = Behavior {
        chunking: Chunking::Random { seed: 9 },
        ..Behavior::default()
    };
    let split = start(example_data(), behavior).await;
    let mut client = logged_in(&split).await;
    let writes_before = split.stats().cli_writes;
    let received = client.command("LIST AllDomains").await;
    assert_eq!(received, expected);
    // At most 64 bytes per write, so a reply this long takes several.
    let writes = split.stats().cli_writes - writes_before;
    assert!(
        writes >= (expected.len() as u64).div_ceil(64),
        "{writes} writes for {} bytes",
        expected.len()
    );
}

#[tokio::test]
async fn latency_delays_each_reply() {
    let behavior = Behavior {
        reply_latency: std::time::Duration::from_millis(150),
        ..Behavior::default()
    };
    let server = start(example_data(), behavior).await;
    let mut client = RawClient::connect(server.cli_addr()).await;
    client.read_reply().await;
    let started = std::time::Instant::now();
    client.command("GET VERSION").await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(150));
}

#[tokio::test]
async fn commands_and_values_are_case_and_quote_tolerant() {
    let server = start(unit_data(), Behavior::default()).await;
    let mut client = logged_in(&server).await;
    assert_eq!(
        client.command("update domain 'NAME-server.COM'").await,
        "+OK: command successful\r\n<domain#> "
    );
    // `UPDATE Account name` with three words names the account `name`.
    assert_eq!(
        client.command("Update Account Name").await,
        "+OK: command successful\r\n<domain-account#> "
    );
    client.command("back").await;
    assert_eq!(
        client.command("UPDATE ACCOUNT NAME \"jürgen\"").await,
        "+OK: command successful\r\n<domain-account#> "
    );
    client.command("BACK").await;
    let reply = client.command("list accounts 'whole-*'").await;
    assert!(
        reply.contains("\r\nwhole-mb\r\nwhole-gb\r\n\r\n"),
        "{reply:?}"
    );
    let reply = client.command("LIST Accounts").await;
    assert!(reply.contains("\r\nJürgen\r\n"), "{reply:?}");
}

#[tokio::test]
async fn unknown_command_gets_err() {
    let server = start(example_data(), Behavior::default()).await;
    let mut client = logged_in(&server).await;
    assert_eq!(
        client.command("FROBNICATE").await,
        "-ERR: Unknown command\r\n<#> "
    );
    assert_eq!(
        client.command("UPDATE Domain \"unterminated").await,
        "-ERR: Invalid command syntax: unterminated double quote\r\n<#> "
    );
}

#[tokio::test]
async fn set_data_serves_new_sessions() {
    let server = start(example_data(), Behavior::default()).await;
    let mut first = logged_in(&server).await;
    server.set_data(unit_data());
    assert_eq!(server.data(), unit_data());

    let reply = first.command("LIST AllDomains").await;
    assert!(reply.contains("example.com"), "{reply:?}");
    let mut second = logged_in(&server).await;
    let reply = second.command("LIST AllDomains").await;
    assert!(reply.contains("\r\nName-Server.com "), "{reply:?}");
    assert!(!reply.contains("old.example"), "{reply:?}");
}

/// Logs in, sends `count` commands in one write and returns how long their
/// replies took, with the server's count of commands sent ahead.
async fn time_commands_sent_together(
    latency_kind: LatencyKind,
    latency: Duration,
    count: usize,
) -> (Duration, u64) {
    let behavior = Behavior {
        reply_latency: latency,
        latency_kind,
        ..Behavior::default()
    };
    let server = start(example_data(), behavior).await;
    let mut client = logged_in(&server).await;

    let started = Instant::now();
    client
        .send_bytes("GET VERSION\r\n".repeat(count).as_bytes())
        .await;
    let mut replies = 0;
    while replies < count {
        let text = String::from_utf8(client.read_reply().await).unwrap();
        replies += text.matches("+OK").count();
    }
    (started.elapsed(), server.stats().commands_sent_ahead)
}

#[tokio::test]
async fn latency_kinds_differ_for_commands_sent_together() {
    let latency = Duration::from_millis(300);

    // Processing time adds up: the pauses run one after the other and never
    // end early.
    let (elapsed, sent_ahead) =
        time_commands_sent_together(LatencyKind::Processing, latency, 4).await;
    assert!(elapsed >= 4 * latency, "{elapsed:?}");
    assert_eq!(sent_ahead, 3);

    // A network round trip is shared: all four replies leave about one
    // latency after the write, far below the four latencies above.
    let (elapsed, sent_ahead) = time_commands_sent_together(LatencyKind::Network, latency, 4).await;
    assert!(elapsed >= latency, "{elapsed:?}");
    assert!(elapsed < 4 * latency, "{elapsed:?}");
    assert_eq!(sent_ahead, 3);
}
