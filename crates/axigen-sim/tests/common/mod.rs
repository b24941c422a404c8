//! A raw CLI client for tests: plain bytes over a TcpStream, so that the
//! simulator is checked without any parsing code of the project's client.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use axigen_sim::{Account, Domain, ServerData};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound for any single wait; never reached when the server works.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct RawClient<S> {
    stream: S,
    buffer: Vec<u8>,
}

impl RawClient<TcpStream> {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr)
            .await
            .expect("connect to the simulator");
        Self::new(stream)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> RawClient<S> {
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            buffer: Vec::new(),
        }
    }

    pub async fn send(&mut self, line: &str) {
        self.send_bytes(format!("{line}\r\n").as_bytes()).await;
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .await
            .expect("write to the simulator");
    }

    /// Reads until the received bytes end with `suffix` and returns them.
    pub async fn read_until(&mut self, suffix: &[u8]) -> Vec<u8> {
        let read = async {
            while !self.buffer.ends_with(suffix) {
                let count = self.read_more().await;
                assert!(
                    count > 0,
                    "connection closed before {:?}; received {:?}",
                    String::from_utf8_lossy(suffix),
                    String::from_utf8_lossy(&self.buffer)
                );
            }
        };
        tokio::time::timeout(WAIT, read)
            .await
            .expect("timed out waiting for the reply");
        std::mem::take(&mut self.buffer)
    }

    /// Reads until a CLI prompt (`<...> `) ends the received bytes.
    pub async fn read_reply(&mut self) -> Vec<u8> {
        let read = async {
            while !ends_with_prompt(&self.buffer) {
                let count = self.read_more().await;
                assert!(
                    count > 0,
                    "connection closed before a prompt; received {:?}",
                    String::from_utf8_lossy(&self.buffer)
                );
            }
        };
        tokio::time::timeout(WAIT, read)
            .await
            .expect("timed out waiting for a prompt");
        std::mem::take(&mut self.buffer)
    }

    /// Reads until the server closes the connection and returns the bytes
    /// received before the close.
    pub async fn read_to_close(&mut self) -> Vec<u8> {
        let read = async { while self.read_more().await > 0 {} };
        tokio::time::timeout(WAIT, read)
            .await
            .expect("timed out waiting for the server to close");
        std::mem::take(&mut self.buffer)
    }

    /// Appends what the next read returns to the buffer; 0 means closed
    /// (a reset counts as closed).
    async fn read_more(&mut self) -> usize {
        self.buffer.reserve(64 * 1024);
        self.stream.read_buf(&mut self.buffer).await.unwrap_or(0)
    }

    /// Sends a command and returns its reply as text (lossy UTF-8).
    pub async fn command(&mut self, line: &str) -> String {
        self.send(line).await;
        String::from_utf8_lossy(&self.read_reply().await).into_owned()
    }

    /// Reads the banner and logs in as admin/secret.
    pub async fn login(&mut self) {
        self.read_reply().await;
        self.send("USER admin").await;
        self.read_reply().await;
        let reply = self.command("secret").await;
        assert_eq!(reply, "+OK: Authentication successful\r\n<#> ");
    }
}

/// Tells whether `bytes` end with `<context> `, the context made of letters,
/// digits, `-` and `#`.
pub fn ends_with_prompt(bytes: &[u8]) -> bool {
    if !bytes.ends_with(b"> ") {
        return false;
    }
    let body = &bytes[..bytes.len() - 2];
    match body.iter().rposition(|&b| b == b'<') {
        Some(start) => body[start + 1..]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'#'),
        None => false,
    }
}

pub fn account(name: &str, quota_kb: Option<u64>, used_kb: u64, message_count: u64) -> Account {
    Account {
        name: name.to_string(),
        quota_kb,
        used_kb,
        message_count,
    }
}

/// Builds the data of the documented example session: one enabled domain
/// with a limited and an unlimited account, and one empty disabled domain.
pub fn example_data() -> ServerData {
    ServerData {
        domains: vec![
            Domain {
                name: "example.com".to_string(),
                enabled: true,
                accounts: vec![
                    account("alice", Some(1_048_576), 734_003, 5120),
                    account("postmaster", None, 0, 0),
                ],
            },
            Domain {
                name: "old.example".to_string(),
                enabled: false,
                accounts: vec![],
            },
        ],
    }
}

/// Data whose usage figures exercise every `Mbox size` unit.
pub fn unit_data() -> ServerData {
    ServerData {
        domains: vec![Domain {
            name: "Name-Server.com".to_string(),
            enabled: true,
            accounts: vec![
                account("odd", Some(1_048_576), 1500, 10),
                account("whole-mb", Some(1_048_576), 2048, 10),
                account("whole-gb", None, 2_097_152, 10),
                account("name", Some(2_097_152), 0, 0),
                account("Jürgen", Some(102_400), 512, 3),
            ],
        }],
    }
}
