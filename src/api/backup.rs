//! `GET /api/v1/backup`: a consistent JSON Lines snapshot, streamed while serving.

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::http::Method;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use tokio::sync::mpsc;

use super::auth::CanWrite;
use super::responses::{Forbidden, HeadersTooLarge, RateLimited, Unauthenticated, Unavailable};
use crate::error::ApiError;
use crate::store::Store;
use crate::telemetry::with_outcome;

/// Chunks of the stream in flight between the backup and the client.
const CHUNKS_IN_FLIGHT: usize = 8;
const CHUNK_BYTES: usize = 64 * 1024;
/// A client that takes no chunk for this long is given up on, so a stalled
/// download does not hold a thread and a scan of the store for good.
const STALL: std::time::Duration = std::time::Duration::from_secs(60);

/// Backups hold every alert, so they need a write token.
#[utoipa::path(
    get,
    path = "/api/v1/backup",
    tag = "admin",
    summary = "A consistent snapshot of every alert, as JSON Lines",
    description = "A header line, one alert per line, and a trailer line with the line count \
        and the change sequence the snapshot is consistent at. A missing trailer means the \
        backup is incomplete.",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The backup, streamed.", body = String,
            content_type = "application/x-ndjson",
            headers(("Content-Disposition" = String,
                description = "`attachment; filename=\"klaxon-backup.jsonl\"`."))),
        Unauthenticated, Forbidden, RateLimited, HeadersTooLarge, Unavailable
    )
)]
pub async fn backup(
    _: CanWrite,
    req: HttpRequest,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    let mut response = HttpResponse::Ok();
    response
        .content_type("application/x-ndjson")
        .insert_header((
            "content-disposition",
            "attachment; filename=\"klaxon-backup.jsonl\"",
        ));
    // A store that cannot be read is a 503 now, not a 200 whose stream ends
    // at once; HEAD gets the status GET would.
    store.settled_seq().await?;
    if req.method() == Method::HEAD {
        // actix would read the whole body only to drop it. An empty stream
        // keeps GET's framing (chunked, no length) without scanning.
        let (_, none) = mpsc::channel(1);
        return Ok(response.streaming(ChunkStream(none)));
    }
    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let store = store.get_ref().clone();
    let runtime = tokio::runtime::Handle::current();
    actix_web::rt::task::spawn_blocking(move || {
        let mut out = ChannelWriter {
            buffer: Vec::with_capacity(CHUNK_BYTES),
            tx,
            runtime,
            client_gone: None,
        };
        let result = store.backup(&mut out);
        if let Err(e) = &result {
            match out.client_gone {
                Some(why) => tracing::warn!(why, "backup not finished: the client stopped it"),
                None => tracing::error!(error = %e, "backup failed"),
            }
            // The missing trailer tells the client the backup is incomplete.
            // Never waits: after a stalled client the channel is full, and
            // the missing trailer says enough.
            let _ = out.tx.try_send(Err(std::io::Error::other("backup failed")));
        }
    });
    let response = response.streaming(ChunkStream(rx));
    Ok(with_outcome(response, "backup streamed"))
}

type Chunk = Result<Bytes, std::io::Error>;

/// Buffers the backup's writes into chunks for the response stream.
struct ChannelWriter {
    buffer: Vec<u8>,
    tx: mpsc::Sender<Chunk>,
    /// For the send's timeout.
    runtime: tokio::runtime::Handle,
    /// Why the client no longer takes the backup, once it does not.
    client_gone: Option<&'static str>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK_BYTES),
        ));
        let sent = self
            .runtime
            .block_on(self.tx.send_timeout(Ok(chunk), STALL));
        sent.map_err(|e| {
            let (kind, why) = match e {
                mpsc::error::SendTimeoutError::Timeout(_) => {
                    (std::io::ErrorKind::TimedOut, "client stopped reading")
                }
                mpsc::error::SendTimeoutError::Closed(_) => {
                    (std::io::ErrorKind::BrokenPipe, "client went away")
                }
            };
            self.client_gone = Some(why);
            std::io::Error::new(kind, why)
        })
    }
}

struct ChunkStream(mpsc::Receiver<Chunk>);

impl futures_core::Stream for ChunkStream {
    type Item = Chunk;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Chunk>> {
        self.0.poll_recv(cx)
    }
}
