//! Sends replies over the socket as the behavior sets: after a pause, whole
//! or cut into small writes, or only the first half before a close.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::behavior::{Chunking, LatencyKind};
use crate::rng::SplitMix64;
use crate::server::Shared;
use crate::stats::StatsCounters;

/// Largest write when [`Chunking::Random`] splits a reply.
const MAX_RANDOM_CHUNK: u64 = 64;

pub(crate) struct ReplyWriter<W> {
    inner: W,
    chunking: Chunking,
    pause: Duration,
    latency: Duration,
    latency_kind: LatencyKind,
    rng: SplitMix64,
    shared: Arc<Shared>,
}

impl<W: AsyncWrite + Unpin> ReplyWriter<W> {
    /// `session_number` varies the random split points between sessions.
    pub(crate) fn new(
        inner: W,
        chunking: Chunking,
        pause: Duration,
        latency: Duration,
        latency_kind: LatencyKind,
        session_number: u64,
        shared: Arc<Shared>,
    ) -> Self {
        let seed = match chunking {
            Chunking::Random { seed } => seed ^ session_number.wrapping_mul(0x2545_f491_4f6c_dd1d),
            _ => session_number,
        };
        Self {
            inner,
            chunking,
            pause,
            latency,
            latency_kind,
            rng: SplitMix64::new(seed),
            shared,
        }
    }

    /// Sends one reply, waiting for the configured latency first: from now
    /// for [`LatencyKind::Processing`], from `arrived`, when the command
    /// arrived, for [`LatencyKind::Network`].
    pub(crate) async fn send(&mut self, bytes: &[u8], arrived: Instant) -> std::io::Result<()> {
        if self.latency.is_zero() {
            return self.write_reply(bytes).await;
        }
        let started = match self.latency_kind {
            LatencyKind::Processing => Instant::now(),
            LatencyKind::Network => arrived,
        };
        crate::delay::pause_until(started + self.latency).await;
        self.write_reply(bytes).await?;
        self.shared.stats.record_delayed_reply(started.elapsed());
        Ok(())
    }

    async fn write_reply(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self.chunking {
            Chunking::Whole => {
                StatsCounters::increment(&self.shared.stats.cli_writes);
                self.inner.write_all(bytes).await?;
                self.inner.flush().await?;
            }
            Chunking::OneByte => {
                for byte in bytes {
                    self.write_piece(std::slice::from_ref(byte)).await?;
                }
            }
            Chunking::Random { .. } => {
                let mut rest = bytes;
                while !rest.is_empty() {
                    let size = (self.rng.range(1, MAX_RANDOM_CHUNK) as usize).min(rest.len());
                    let (piece, tail) = rest.split_at(size);
                    self.write_piece(piece).await?;
                    rest = tail;
                }
            }
        }
        Ok(())
    }

    /// Sends the first half of a reply (at least one byte) and closes the
    /// connection, as a server that dies while replying does.
    pub(crate) async fn send_half_and_close(
        &mut self,
        bytes: &[u8],
        arrived: Instant,
    ) -> std::io::Result<()> {
        let half = (bytes.len() / 2).max(1).min(bytes.len());
        self.send(&bytes[..half], arrived).await?;
        self.close().await
    }

    pub(crate) async fn close(&mut self) -> std::io::Result<()> {
        self.inner.shutdown().await
    }

    /// Writes and flushes one piece, then pauses so that the client sees
    /// the pieces in separate reads as far as the network allows.
    async fn write_piece(&mut self, piece: &[u8]) -> std::io::Result<()> {
        StatsCounters::increment(&self.shared.stats.cli_writes);
        self.inner.write_all(piece).await?;
        self.inner.flush().await?;
        if self.pause.is_zero() {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(self.pause).await;
        }
        Ok(())
    }
}
