//! The full report and the report of one domain, streamed. One statement
//! returns every server, domain and account ordered by server, domain and
//! local part (or one domain's accounts by local part). A task turns the
//! rows into JSON (or CSV) as they arrive and hands chunks of about
//! [`CHUNK_BYTES`] to the response body through a channel of
//! [`CHANNEL_CHUNKS`] slots.
//!
//! Memory per request is therefore bounded by the chunk size times the
//! channel depth plus sqlx's row buffer, whatever the number of accounts,
//! and the database is asked one query however many servers and domains
//! there are. A slow client applies back-pressure through the channel; a
//! client that stops reading for longer than the idle timeout, or goes
//! away, ends the task and frees its database connection.

use std::time::Duration;

use axiquota_core::store::report::{self, AccountRow, DomainRow, ReportRow};
use axum::body::{Body, Bytes};
use chrono::{DateTime, Utc};
use futures::channel::{mpsc, oneshot};
use futures::{SinkExt, Stream, StreamExt};
use serde::Serialize;
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};
use uuid::Uuid;

use crate::csv;
use crate::extract::Format;
use crate::views::AccountView;

/// Size at which a chunk is handed to the body.
pub const CHUNK_BYTES: usize = 32 * 1024;
/// Chunks that may wait in the channel for the client.
pub const CHANNEL_CHUNKS: usize = 4;

type Chunk = Result<Bytes, std::io::Error>;

/// The part of the stored snapshots that a streamed report covers.
pub enum Scope {
    /// Every server, or only the one with this host name.
    Full { server_hostname: Option<String> },
    /// One domain, found beforehand, and its accounts.
    Domain(DomainRow),
}

/// Takes a database connection, starts streaming a report on it and
/// returns the response body. Taking the connection first turns a database
/// that is down into an error status rather than a broken body.
///
/// # Errors
///
/// When no database connection can be had.
pub async fn report_body(
    pool: &PgPool,
    scope: Scope,
    format: Format,
    idle_timeout: Duration,
) -> sqlx::Result<Body> {
    let connection = pool.acquire().await?;
    let (sender, receiver) = mpsc::channel::<Chunk>(CHANNEL_CHUNKS);
    let (finished, finished_signal) = oneshot::channel();
    let span = tracing::Span::current();
    tokio::spawn(tracing::Instrument::instrument(
        produce(connection, scope, format, sender, finished, idle_timeout),
        span,
    ));
    Ok(Body::from_stream(complete_or_broken(
        receiver,
        finished_signal,
    )))
}

/// Ends `chunks` with an error unless `finished` signals that the whole
/// report was written, so that a report cut short (a stalled client, a failed
/// query, a panic) never ends as a complete response whose document
/// parses.
fn complete_or_broken(
    chunks: impl Stream<Item = Chunk>,
    finished: oneshot::Receiver<()>,
) -> impl Stream<Item = Chunk> {
    let end = futures::stream::once(finished).filter_map(|signal| async move {
        signal.is_err().then(|| {
            Err(std::io::Error::other(
                "the report ended before it was complete",
            ))
        })
    });
    chunks.chain(end)
}

/// Reason the producer stopped early.
enum Stop {
    ClientGone,
    ClientStalled,
}

struct Output {
    sender: mpsc::Sender<Chunk>,
    buffer: Vec<u8>,
    idle_timeout: Duration,
}

impl Output {
    async fn flush_if_full(&mut self) -> Result<(), Stop> {
        if self.buffer.len() >= CHUNK_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Stop> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK_BYTES + 4096),
        ));
        match tokio::time::timeout(self.idle_timeout, self.sender.send(Ok(chunk))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Stop::ClientGone),
            Err(_) => Err(Stop::ClientStalled),
        }
    }
}

async fn produce(
    mut connection: PoolConnection<Postgres>,
    scope: Scope,
    format: Format,
    sender: mpsc::Sender<Chunk>,
    finished: oneshot::Sender<()>,
    idle_timeout: Duration,
) {
    let connection = &mut *connection;
    let mut output = Output {
        sender,
        buffer: Vec::with_capacity(CHUNK_BYTES + 4096),
        idle_timeout,
    };
    let result = match (scope, format) {
        (Scope::Full { server_hostname }, Format::Json) => {
            write_json(connection, server_hostname, &mut output).await
        }
        (Scope::Full { server_hostname }, Format::Csv) => {
            write_csv(connection, server_hostname, &mut output).await
        }
        (Scope::Domain(domain), Format::Json) => {
            write_domain_json(connection, domain, &mut output).await
        }
        (Scope::Domain(domain), Format::Csv) => {
            write_domain_csv(connection, domain.domain_id, &mut output).await
        }
    };
    match result {
        Ok(Ok(())) => {
            if output.flush().await.is_ok() {
                let _ = finished.send(());
            }
        }
        Ok(Err(Stop::ClientGone)) => tracing::info!("client closed the report stream early"),
        Ok(Err(Stop::ClientStalled)) => tracing::warn!(
            idle_seconds = idle_timeout.as_secs(),
            "report stream ended: the client stopped reading"
        ),
        Err(error) => {
            // The status line has been sent, so the only way to tell the
            // client is to break the body, so it receives an incomplete response,
            // never a truncated document that parses.
            tracing::error!(
                error = axiquota_core::store::describe_sqlx_error(&error),
                "report stream failed"
            );
            let _ = output
                .sender
                .send(Err(std::io::Error::other("report query failed")))
                .await;
        }
    }
}

fn push_json<T: Serialize + ?Sized>(buffer: &mut Vec<u8>, value: &T) {
    // Writing to a Vec has no I/O error and these types always serialize, so
    // an error here is a bug.
    serde_json::to_writer(buffer, value).expect("serialize to memory");
}

/// Nesting state while rows go by.
#[derive(Default)]
struct Position {
    server: Option<Uuid>,
    domain: Option<i64>,
    domain_accounts: usize,
    server_collected_at: Option<DateTime<Utc>>,
}

fn close_domain(buffer: &mut Vec<u8>, position: &mut Position) {
    if position.domain.take().is_some() {
        buffer.extend_from_slice(b"],\"total_accounts\":");
        buffer.extend_from_slice(position.domain_accounts.to_string().as_bytes());
        buffer.push(b'}');
    }
}

fn close_server(buffer: &mut Vec<u8>, position: &mut Position) {
    close_domain(buffer, position);
    if position.server.take().is_some() {
        buffer.extend_from_slice(b"],\"collected_at\":");
        push_json(buffer, &position.server_collected_at.take());
        buffer.push(b'}');
    }
}

fn open_server(buffer: &mut Vec<u8>, position: &mut Position, row: &ReportRow) {
    if position.server.is_some() {
        close_server(buffer, position);
        buffer.push(b',');
    }
    position.server = Some(row.server_id);
    buffer.extend_from_slice(b"{\"name\":");
    push_json(buffer, &row.server_name);
    buffer.extend_from_slice(b",\"hostname\":");
    push_json(buffer, &row.server_hostname);
    buffer.extend_from_slice(b",\"cli_port\":");
    push_json(buffer, &row.cli_port);
    buffer.extend_from_slice(b",\"webadmin_port\":");
    push_json(buffer, &row.webadmin_port);
    buffer.extend_from_slice(b",\"domains\":[");
}

fn open_domain(buffer: &mut Vec<u8>, position: &mut Position, row: &ReportRow, domain_id: i64) {
    if position.domain.is_some() {
        close_domain(buffer, position);
        buffer.push(b',');
    }
    position.domain = Some(domain_id);
    position.domain_accounts = 0;
    if row.domain_collected_at > position.server_collected_at {
        position.server_collected_at = row.domain_collected_at;
    }
    let name = row
        .domain_display_name
        .as_deref()
        .or(row.domain.as_deref())
        .unwrap_or_default();
    buffer.extend_from_slice(b"{\"name\":");
    push_json(buffer, name);
    buffer.extend_from_slice(b",\"status\":");
    push_json(buffer, &row.domain_status);
    buffer.extend_from_slice(b",\"collected_at\":");
    push_json(buffer, &row.domain_collected_at);
    buffer.extend_from_slice(b",\"accounts\":[");
}

async fn write_json(
    connection: &mut PgConnection,
    server_hostname: Option<String>,
    output: &mut Output,
) -> sqlx::Result<Result<(), Stop>> {
    let generated_at = Utc::now();
    let mut position = Position::default();
    let rows = report::stream_full_report(connection, server_hostname);

    output.buffer.extend_from_slice(b"{\"servers\":[");
    let written = write_rows(rows, output, |buffer, row: ReportRow| {
        if position.server != Some(row.server_id) {
            open_server(buffer, &mut position, &row);
        }
        if let Some(domain_id) = row.domain_id {
            if position.domain != Some(domain_id) {
                open_domain(buffer, &mut position, &row, domain_id);
            }
        }
        if let Some(account) = AccountView::from_report_row(&row) {
            if position.domain_accounts > 0 {
                buffer.push(b',');
            }
            position.domain_accounts += 1;
            push_json(buffer, &account);
        }
    })
    .await?;
    if let Err(stop) = written {
        return Ok(Err(stop));
    }

    close_server(&mut output.buffer, &mut position);
    output.buffer.extend_from_slice(b"],\"generated_at\":");
    push_json(&mut output.buffer, &generated_at);
    output.buffer.push(b'}');
    Ok(Ok(()))
}

async fn write_csv(
    connection: &mut PgConnection,
    server_hostname: Option<String>,
    output: &mut Output,
) -> sqlx::Result<Result<(), Stop>> {
    let rows = report::stream_full_report(connection, server_hostname);
    write_csv_rows(rows, output, |buffer, row: ReportRow| {
        // A server or domain without accounts has no line.
        if let Some(account) = AccountView::from_report_row(&row) {
            csv::write_account(buffer, &row.server_name, &row.server_hostname, &account);
        }
    })
    .await
}

/// Writes the CSV header, then each row as `write_row` formats it.
async fn write_csv_rows<R>(
    rows: impl Stream<Item = sqlx::Result<R>>,
    output: &mut Output,
    write_row: impl FnMut(&mut Vec<u8>, R),
) -> sqlx::Result<Result<(), Stop>> {
    csv::write_header(&mut output.buffer, csv::ACCOUNT_COLUMNS);
    write_rows(rows, output, write_row).await
}

/// Formats each row into the output with `write_row`, handing the output
/// to the client whenever a chunk is full.
async fn write_rows<R>(
    rows: impl Stream<Item = sqlx::Result<R>>,
    output: &mut Output,
    mut write_row: impl FnMut(&mut Vec<u8>, R),
) -> sqlx::Result<Result<(), Stop>> {
    let mut rows = std::pin::pin!(rows);
    while let Some(row) = rows.next().await {
        write_row(&mut output.buffer, row?);
        if let Err(stop) = output.flush_if_full().await {
            return Ok(Err(stop));
        }
    }
    Ok(Ok(()))
}

/// Writes one domain in the shape of `DomainView`, with `total_accounts`
/// after the accounts, since they are counted as they go by.
async fn write_domain_json(
    connection: &mut PgConnection,
    domain: DomainRow,
    output: &mut Output,
) -> sqlx::Result<Result<(), Stop>> {
    let rows = report::stream_domain_accounts(connection, domain.domain_id);
    output.buffer.extend_from_slice(b"{\"name\":");
    push_json(
        &mut output.buffer,
        domain.display_name.as_deref().unwrap_or(&domain.name),
    );
    output.buffer.extend_from_slice(b",\"status\":");
    push_json(&mut output.buffer, &domain.status);
    output.buffer.extend_from_slice(b",\"collected_at\":");
    push_json(&mut output.buffer, &domain.collected_at);
    output.buffer.extend_from_slice(b",\"server_name\":");
    push_json(&mut output.buffer, &domain.server_name);
    output.buffer.extend_from_slice(b",\"server_hostname\":");
    push_json(&mut output.buffer, &domain.server_hostname);
    output.buffer.extend_from_slice(b",\"accounts\":[");

    let mut accounts = 0_usize;
    let written = write_rows(rows, output, |buffer, row: AccountRow| {
        if accounts > 0 {
            buffer.push(b',');
        }
        accounts += 1;
        push_json(buffer, &AccountView::from_row(&row, false));
    })
    .await?;
    if let Err(stop) = written {
        return Ok(Err(stop));
    }

    output.buffer.extend_from_slice(b"],\"total_accounts\":");
    output
        .buffer
        .extend_from_slice(accounts.to_string().as_bytes());
    output.buffer.push(b'}');
    Ok(Ok(()))
}

async fn write_domain_csv(
    connection: &mut PgConnection,
    domain_id: i64,
    output: &mut Output,
) -> sqlx::Result<Result<(), Stop>> {
    let rows = report::stream_domain_accounts(connection, domain_id);
    write_csv_rows(rows, output, |buffer, row: AccountRow| {
        let account = AccountView::from_row(&row, false);
        csv::write_account(buffer, &row.server_name, &row.server_hostname, &account);
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `pieces` chunks through a body's channel, signals a finished
    /// report when `finished` is set, and returns what a client reads.
    async fn read_body(pieces: usize, finished: bool) -> Vec<Chunk> {
        let (mut sender, receiver) = mpsc::channel::<Chunk>(pieces);
        let (finish, finished_signal) = oneshot::channel();
        for _ in 0..pieces {
            sender.send(Ok(Bytes::from_static(b"row\n"))).await.unwrap();
        }
        if finished {
            finish.send(()).unwrap();
        } else {
            drop(finish);
        }
        drop(sender);
        complete_or_broken(receiver, finished_signal)
            .collect()
            .await
    }

    #[test]
    fn finished_report_ends_cleanly() {
        let chunks = futures::executor::block_on(read_body(2, true));
        assert_eq!(chunks.len(), 2);
        assert!(chunks.iter().all(Result::is_ok));
    }

    #[test]
    fn unfinished_report_ends_with_error() {
        let chunks = futures::executor::block_on(read_body(2, false));
        assert_eq!(chunks.len(), 3);
        assert!(chunks[..2].iter().all(Result::is_ok));
        assert!(chunks[2].is_err());
    }
}
