//! The framing layer of the Axigen CLI client: one TCP or implicit-TLS
//! connection, its read buffer, the login exchange, and commands turned into
//! replies or errors.
//!
//! Replies end by their content (a status line, then a prompt at the end of
//! the data read), whatever the chunking of the stream. Every read waits at
//! most `reply_timeout`, and each read that brings data starts that wait
//! again. A reply larger than `max_reply_bytes` is an error. After any error
//! the connection is unusable and the caller opens a new one.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tracing::debug;

use super::framing::{Frame, FrameMode, ReplyReader, Status};
use crate::axigen::tls;
use crate::model::ServerEndpoint;
use crate::secret::Secret;

/// The fix for a plain client at a port that expects TLS, which never
/// sends the banner.
const TLS_PORT_HINT: &str = "if this port expects TLS, set cli_tls to true";

/// Size of one socket read.
const READ_CHUNK: usize = 16 * 1024;

/// Limits applied to one CLI connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Maximum time for the TCP connect and the TLS handshake together.
    pub connect_timeout: Duration,
    /// Maximum time without receiving a byte while a reply is expected.
    pub reply_timeout: Duration,
    /// Maximum raw size of one reply, control codes included.
    pub max_reply_bytes: usize,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            reply_timeout: Duration::from_secs(30),
            max_reply_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A failed CLI operation, grouped by what the caller does next.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server could not be reached: check the host name, port and
    /// firewall.
    #[error("connecting to the Axigen CLI at {address} failed: {source}")]
    Connect {
        address: String,
        #[source]
        source: io::Error,
    },
    /// The TLS handshake failed or the certificate was rejected.
    #[error("TLS handshake with the Axigen CLI at {address} failed: {detail}")]
    Tls { address: String, detail: String },
    /// The server sent nothing for `after` while a reply was expected.
    #[error(
        "timed out after {after:?} without data from the Axigen CLI while waiting for the reply to \
         {during}"
    )]
    TimedOut { during: String, after: Duration },
    /// The server rejected the username or the password. It is never
    /// retried, because servers lock out clients after a few failures.
    #[error(
        "authentication as user \"{username}\" failed: \"{status}\"; check the username and \
         password stored for this server"
    )]
    AuthenticationFailed { username: String, status: String },
    /// The server replied to a command with `-ERR`.
    #[error("the Axigen CLI rejected {command}: \"{status}\"")]
    Rejected { command: String, status: String },
    /// The server sent something the client cannot read.
    #[error("unexpected output from the Axigen CLI: {detail}: \"{line}\"")]
    Protocol { line: String, detail: String },
    /// One reply exceeded the configured size limit.
    #[error(
        "a reply from the Axigen CLI exceeded the limit of {limit} bytes; raise the reply size limit"
    )]
    ReplyTooLarge { limit: usize },
    /// The server closed the connection, or the connection broke.
    #[error(
        "the Axigen CLI connection was closed while waiting for the reply to {during}: {detail}"
    )]
    Closed { during: String, detail: String },
}

impl CliError {
    /// Returns whether the session was lost in a way that a new session may not
    /// meet again, because the peer closed or went silent.
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, Self::Closed { .. } | Self::TimedOut { .. })
    }
}

/// A reply that ended with `+OK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The body lines before the status line.
    pub lines: Vec<String>,
    /// The status line.
    pub status: String,
    /// The prompt path that followed, e.g. `#` or `domain-account#`.
    pub prompt: String,
}

trait CliStream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> CliStream for T {}

/// One logged-in (or logging-in) CLI session.
pub struct Connection {
    address: String,
    stream: Box<dyn CliStream>,
    reader: ReplyReader,
    read_buffer: Box<[u8]>,
    options: ConnectOptions,
    /// `-ERR` replies received in this session.
    rejected: u32,
    prompt: String,
    /// Set after an error that leaves the stream out of step.
    broken: bool,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("address", &self.address)
            .field("prompt", &self.prompt)
            .field("rejected", &self.rejected)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to the server's CLI port (over TLS when the endpoint sets `cli_tls`)
    /// and reads the banner up to the `<login> ` prompt.
    ///
    /// # Errors
    ///
    /// [`CliError::Connect`], [`CliError::Tls`], or any reply error while
    /// reading the banner.
    pub async fn connect(
        endpoint: &ServerEndpoint,
        options: &ConnectOptions,
    ) -> Result<Self, CliError> {
        let address = format!("{}:{}", endpoint.hostname, endpoint.cli_port);
        let stream = timeout(options.connect_timeout, open_stream(endpoint, &address))
            .await
            .map_err(|_| CliError::Connect {
                address: address.clone(),
                source: io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no connection within {:?}", options.connect_timeout),
                ),
            })??;

        let mut connection = Self {
            address,
            stream,
            reader: ReplyReader::default(),
            read_buffer: vec![0; READ_CHUNK].into_boxed_slice(),
            options: *options,
            rejected: 0,
            prompt: String::new(),
            broken: false,
        };

        let banner = match connection
            .read_frame(FrameMode::Login, "the connection banner")
            .await
        {
            Ok(banner) => banner,
            // A TLS listener waits for a handshake that a plain client never
            // sends, then closes or stays silent.
            Err(CliError::Closed { during, detail }) if !endpoint.cli_tls => {
                return Err(CliError::Closed {
                    during,
                    detail: format!("{detail}; {TLS_PORT_HINT}"),
                });
            }
            Err(CliError::TimedOut { during, after }) if !endpoint.cli_tls => {
                return Err(CliError::TimedOut {
                    during: format!("{during} ({TLS_PORT_HINT})"),
                    after,
                });
            }
            Err(error) => return Err(error),
        };
        if banner.prompt.as_deref() != Some("login") {
            return Err(connection.fail(CliError::Protocol {
                line: banner.prompt.unwrap_or_default(),
                detail: "expected the <login> prompt after the banner".to_owned(),
            }));
        }
        if let Some(status) = banner.status.filter(|status| !status.ok) {
            return Err(connection.fail(CliError::Closed {
                during: "the connection banner".to_owned(),
                detail: status.line,
            }));
        }
        Ok(connection)
    }

    /// Logs in with `USER`, then the password alone on a line.
    ///
    /// # Errors
    ///
    /// [`CliError::AuthenticationFailed`] when the server rejects either;
    /// never retried here.
    pub async fn login(&mut self, username: &str, password: &Secret) -> Result<(), CliError> {
        if username.is_empty() || username.chars().any(char::is_control) {
            return Err(CliError::AuthenticationFailed {
                username: username.to_owned(),
                status: "the username is empty or contains a control character".to_owned(),
            });
        }
        if password.expose().contains(['\r', '\n']) {
            return Err(CliError::AuthenticationFailed {
                username: username.to_owned(),
                status: "the password contains a line break".to_owned(),
            });
        }

        // The server answers USER with the <password> prompt, with or
        // without a status line before it.
        let user_command = format!("USER {}", super::client::quote_if_needed(username));
        debug!(command = %user_command, "sending");
        self.send_line(&user_command, &user_command).await?;
        let frame = self.read_frame(FrameMode::Login, &user_command).await?;
        let rejected_status = frame.status.as_ref().filter(|status| !status.ok);
        if rejected_status.is_some() || frame.prompt.as_deref() != Some("password") {
            let status = rejected_status
                .map(|status| status.line.clone())
                .unwrap_or_else(|| {
                    format!(
                        "no password prompt; got <{}>",
                        frame.prompt.unwrap_or_default()
                    )
                });
            return Err(self.fail(CliError::AuthenticationFailed {
                username: username.to_owned(),
                status,
            }));
        }

        debug!(command = "[password]", "sending");
        self.send_line(password.expose(), "the password").await?;
        let frame = self.read_frame(FrameMode::Command, "the password").await?;
        let status = frame.status.unwrap_or_else(|| Status {
            ok: false,
            line: String::new(),
        });
        let prompt = frame.prompt.unwrap_or_default();
        if !status.ok
            || prompt.eq_ignore_ascii_case("login")
            || prompt.eq_ignore_ascii_case("password")
        {
            return Err(self.fail(CliError::AuthenticationFailed {
                username: username.to_owned(),
                status: status.line,
            }));
        }
        self.prompt = prompt;
        Ok(())
    }

    /// Sends one command line and reads its reply.
    ///
    /// # Errors
    ///
    /// [`CliError::Rejected`] for an `-ERR` reply (the session stays
    /// usable); any other error leaves the connection unusable.
    pub async fn command(&mut self, command: &str) -> Result<Reply, CliError> {
        check_command(command)?;
        debug!(command, "sending");
        self.send_line(command, command).await?;
        let frame = self.read_frame(FrameMode::Command, command).await?;
        self.reply(command, frame)
    }

    /// Sends several command lines in one write, without waiting for a
    /// prompt between them, and reads their replies in order. The server
    /// runs them one after the other as if each had been sent after the
    /// previous prompt, so a rejected command does not stop the rest.
    ///
    /// # Errors
    ///
    /// The outer error is fatal and leaves the connection unusable; an inner
    /// [`CliError::Rejected`] is one command's `-ERR` reply.
    pub async fn commands(
        &mut self,
        commands: &[&str],
    ) -> Result<Vec<Result<Reply, CliError>>, CliError> {
        let Some(first) = commands.first() else {
            return Ok(Vec::new());
        };
        for command in commands {
            check_command(command)?;
        }
        debug!(?commands, "sending ahead");
        self.send_line(&commands.join("\r\n"), first).await?;
        self.reader.expect_ahead(commands.len() - 1);
        let mut replies = Vec::with_capacity(commands.len());
        for command in commands {
            let frame = match self.read_frame(FrameMode::Command, command).await {
                Ok(frame) => frame,
                Err(error) => {
                    self.reader.expect_ahead(0);
                    return Err(error);
                }
            };
            match self.reply(command, frame) {
                Ok(reply) => replies.push(Ok(reply)),
                Err(error @ CliError::Rejected { .. }) => replies.push(Err(error)),
                Err(error) => return Err(error),
            }
        }
        Ok(replies)
    }

    /// Turns the frame read for `command` into its reply.
    fn reply(&mut self, command: &str, frame: Frame) -> Result<Reply, CliError> {
        let Frame {
            lines,
            status,
            prompt,
        } = frame;
        // read_frame returns Command frames only with a status line.
        let status = status.unwrap_or_else(|| Status {
            ok: false,
            line: String::new(),
        });

        let Some(prompt) = prompt else {
            return Err(self.fail(CliError::Closed {
                during: command.to_owned(),
                detail: format!("the server closed the connection after \"{}\"", status.line),
            }));
        };
        self.prompt = prompt.clone();
        debug!(command, status = %status.line, lines = lines.len(), "reply");

        if !status.ok {
            self.rejected += 1;
            return Err(CliError::Rejected {
                command: command.to_owned(),
                status: status.line,
            });
        }
        Ok(Reply {
            lines,
            status: status.line,
            prompt,
        })
    }

    /// Sends `QUIT` and closes the connection, waiting at most the reply
    /// timeout. Errors are ignored: the session ends either way.
    pub async fn quit(mut self) {
        if self.broken {
            return;
        }
        if self.send_line("QUIT", "QUIT").await.is_ok() {
            let _ = self.read_frame(FrameMode::Command, "QUIT").await;
        }
        let _ = timeout(self.options.reply_timeout, self.stream.shutdown()).await;
    }

    /// Returns the number of `-ERR` replies received in this session.
    pub fn rejected_count(&self) -> u32 {
        self.rejected
    }

    /// Returns the prompt path of the current context, e.g. `#` at the root.
    pub fn prompt(&self) -> &str {
        &self.prompt
    }

    /// Returns the address connected to, as `host:port`.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn fail(&mut self, error: CliError) -> CliError {
        self.broken = true;
        error
    }

    /// Writes `line` and CRLF. `label` names it in errors, so a password is
    /// never part of a message.
    async fn send_line(&mut self, line: &str, label: &str) -> Result<(), CliError> {
        if self.broken {
            return Err(CliError::Closed {
                during: label.to_owned(),
                detail: "the connection is unusable after an earlier error".to_owned(),
            });
        }

        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        let write = async {
            self.stream.write_all(&bytes).await?;
            self.stream.flush().await
        };
        match timeout(self.options.reply_timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(self.fail(CliError::Closed {
                during: label.to_owned(),
                detail: format!("sending failed: {error}"),
            })),
            Err(_) => Err(self.fail(CliError::TimedOut {
                during: label.to_owned(),
                after: self.options.reply_timeout,
            })),
        }
    }

    async fn read_frame(&mut self, mode: FrameMode, label: &str) -> Result<Frame, CliError> {
        loop {
            // A reply to a command sent ahead may have arrived with the
            // previous one.
            if let Some(frame) = self.reader.take_frame(mode) {
                return Ok(frame);
            }
            let read = timeout(
                self.options.reply_timeout,
                self.stream.read(&mut self.read_buffer),
            )
            .await;
            let count = match read {
                Ok(Ok(count)) => count,
                Ok(Err(error)) => {
                    return Err(self.fail(CliError::Closed {
                        during: label.to_owned(),
                        detail: format!("reading failed: {error}"),
                    }));
                }
                Err(_) => return Err(self.timed_out(label)),
            };

            if count == 0 {
                if let Some(frame) = self.reader.take_final_frame() {
                    self.broken = true;
                    return Ok(frame);
                }
                let detail = match self.reader.last_line() {
                    Some(line) => format!("the server closed the connection after \"{line}\""),
                    None => "the server closed the connection".to_owned(),
                };
                return Err(self.fail(CliError::Closed {
                    during: label.to_owned(),
                    detail,
                }));
            }

            self.reader.push(&self.read_buffer[..count]);
            if self.reader.raw_len() > self.options.max_reply_bytes {
                return Err(self.fail(CliError::ReplyTooLarge {
                    limit: self.options.max_reply_bytes,
                }));
            }
        }
    }

    /// Builds the error for a read that waited the whole reply timeout. A
    /// prompt with no status line before it is a protocol error rather than
    /// slowness, so it is reported as such.
    fn timed_out(&mut self, label: &str) -> CliError {
        let error = match self.reader.pending_prompt() {
            Some(prompt) if !self.reader.ends_with_status() => CliError::Protocol {
                line: format!("<{prompt}> "),
                detail: format!(
                    "the reply to {label} ended with a prompt but no +OK/-ERR status line"
                ),
            },
            _ => CliError::TimedOut {
                during: label.to_owned(),
                after: self.options.reply_timeout,
            },
        };
        self.fail(error)
    }
}

/// Rejects a command with a control character, which could end the line
/// early and smuggle in a second command.
fn check_command(command: &str) -> Result<(), CliError> {
    if command.chars().any(char::is_control) {
        return Err(CliError::Protocol {
            line: command.escape_default().to_string(),
            detail: "refusing to send a command that contains a control character".to_owned(),
        });
    }
    Ok(())
}

async fn open_stream(
    endpoint: &ServerEndpoint,
    address: &str,
) -> Result<Box<dyn CliStream>, CliError> {
    let tcp = TcpStream::connect((endpoint.hostname.as_str(), endpoint.cli_port))
        .await
        .map_err(|source| CliError::Connect {
            address: address.to_owned(),
            source,
        })?;
    // Commands are single short lines, each replied to before the next is sent.
    let _ = tcp.set_nodelay(true);

    if !endpoint.cli_tls {
        return Ok(Box::new(tcp));
    }

    let tls_error = |detail: String| CliError::Tls {
        address: address.to_owned(),
        detail,
    };
    let config = tls::client_config(endpoint)
        .map_err(|error| tls_error(format!("loading the TLS configuration failed: {error}")))?;
    let server_name = ServerName::try_from(endpoint.hostname.clone())
        .map_err(|_| tls_error(format!("invalid TLS server name \"{}\"", endpoint.hostname)))?;
    let stream = TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|error| tls_error(tls::describe_handshake_error(&error)))?;
    Ok(Box::new(stream))
}
