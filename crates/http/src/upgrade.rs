//! Protocol upgrades (WebSocket): once both sides have switched protocols, bytes are
//! copied in both directions until either side closes.
//!
//! With a reflection guard, the upstream's bytes pass through a [`Masker`] on their way
//! to the client: a credential the upstream quotes after the switch is masked in place
//! (same length, so WebSocket framing stays valid). The pipeline refuses WebSocket
//! compression when guarded, so text frames are searched as sent. What this cannot
//! promise — a credential split across frames, or carried in a protocol's own encoding —
//! is in docs/security.md.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use bytes::Bytes;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::reflection::{GuardSet, Masker};

/// Join the client's and the upstream's upgraded connections in a background task;
/// `guard` masks credentials in what the upstream sends.
pub fn splice(client: OnUpgrade, upstream: OnUpgrade, guard: Option<(GuardSet, Arc<AtomicUsize>)>) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade did not complete");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        let result = match guard {
            None => tokio::io::copy_bidirectional(&mut client, &mut upstream).await,
            Some((guards, count)) => {
                let (mut client_rx, mut client_tx) = tokio::io::split(client);
                let (mut upstream_rx, mut upstream_tx) = tokio::io::split(upstream);
                let masker = Masker::new(guards, count);
                tokio::try_join!(
                    copy_closing(&mut client_rx, &mut upstream_tx),
                    copy_masked(&mut upstream_rx, &mut client_tx, masker),
                )
            }
        };
        match result {
            Ok((up, down)) => tracing::debug!(up, down, "upgraded connection closed"),
            Err(e) => tracing::debug!(error = %e, "upgraded connection ended with an error"),
        }
    });
}

/// Copy until EOF, then shut the writer down.
async fn copy_closing<R, W>(from: &mut R, to: &mut W) -> std::io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let n = tokio::io::copy(from, to).await?;
    to.shutdown().await?;
    Ok(n)
}

/// How long bytes the masker holds back (they could start a credential) wait for the
/// next read before they are sent as they are: an interactive protocol must not stall on
/// a message that happens to end like the start of a credential.
const HOLD_AT_MOST: std::time::Duration = std::time::Duration::from_millis(20);

/// Copy through `masker` until EOF, then flush what it held back and shut down.
async fn copy_masked<R, W>(from: &mut R, to: &mut W, mut masker: Masker) -> std::io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0u64;
    loop {
        let read = from.read(&mut buf);
        let n = if masker.is_holding() {
            match tokio::time::timeout(HOLD_AT_MOST, read).await {
                Ok(n) => n?,
                Err(_) => {
                    let held = masker.finish();
                    to.write_all(&held).await?;
                    to.flush().await?;
                    total += held.len() as u64;
                    continue;
                }
            }
        } else {
            read.await?
        };
        if n == 0 {
            break;
        }
        let out = masker.push(Bytes::copy_from_slice(&buf[..n]));
        to.write_all(&out).await?;
        to.flush().await?;
        total += out.len() as u64;
    }
    let tail = masker.finish();
    to.write_all(&tail).await?;
    to.shutdown().await?;
    Ok(total + tail.len() as u64)
}
