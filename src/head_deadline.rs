//! A deadline on every request head, not only a connection's first.
//!
//! actix-web's `client_request_timeout` times out only the *first* request head on a
//! connection. A client that completes one request and then sends the next head a byte at a
//! time (slowloris on a kept-alive connection) would hold the connection forever. So each
//! accepted TCP stream is wrapped in a [`HeadDeadlineStream`]: the first byte of a request arms
//! a timer, the request reaching the application ([`request_reached_app`], a middleware)
//! disarms it, and writing the answer makes the connection idle again. If the timer fires
//! first, the client gets `408` with a JSON body saying why, and the connection is closed.
//! (Idle connections, and a partial next head that arrived with the previous request, are
//! actix's: its keep-alive timeout closes them.) Bodies are bounded by whoever reads them (the
//! webhook handlers).

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::rt::net::TcpStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Where the current request on a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between requests, or before the first byte (actix's own timeouts close a connection
    /// that stays silent).
    Idle,
    /// Bytes of a request head have arrived; the application has not seen it yet.
    Head,
    /// The application has the request; its answer ends the phase.
    InApp,
}

/// Shared between a connection's stream and its requests (through connection data), so the
/// middleware can say the head is complete.
#[derive(Clone)]
pub struct RequestProgress(Rc<Cell<Phase>>);

/// The answer to a head that did not arrive in time, written by the stream itself because the
/// HTTP layer never saw a complete request.
fn timeout_answer(limit: Duration) -> Vec<u8> {
    let body = format!(
        "{{\"error\":\"the request head did not arrive within {} s; the connection is closed\"}}",
        limit.as_secs()
    );
    format!(
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A TCP stream whose request heads must each arrive within `limit` of their first byte.
pub struct HeadDeadlineStream {
    inner: TcpStream,
    limit: Duration,
    phase: Rc<Cell<Phase>>,
    timer: Pin<Box<Sleep>>,
    /// The last write did not take everything it was offered: the HTTP layer still holds part
    /// of an answer, and a 408 written now would be spliced into it.
    answer_pending: bool,
}

impl HeadDeadlineStream {
    pub fn new(inner: TcpStream, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            phase: Rc::new(Cell::new(Phase::Idle)),
            timer: Box::pin(tokio::time::sleep(limit)),
            answer_pending: false,
        }
    }

    /// The handle the request middleware uses (stored as connection data).
    pub fn progress(&self) -> RequestProgress {
        RequestProgress(self.phase.clone())
    }

    pub fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.inner.peer_addr()
    }

    fn wrote(&mut self, polled: &Poll<io::Result<usize>>, offered: usize) {
        match polled {
            Poll::Ready(Ok(written)) => {
                self.answer_pending = *written < offered;
                if *written > 0 {
                    self.phase.set(Phase::Idle);
                }
            }
            Poll::Pending => self.answer_pending = true,
            Poll::Ready(Err(_)) => {}
        }
    }
}

impl AsyncRead for HeadDeadlineStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.phase.get() == Phase::Head && this.timer.as_mut().poll(cx).is_ready() {
            if !this.answer_pending {
                // Best effort: a client that does not read gets the connection closed anyway.
                let _ = this.inner.try_write(&timeout_answer(this.limit));
            }
            tracing::info!(limit_s = this.limit.as_secs(), "request head too slow; closing the connection");
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "request head too slow")));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let got_bytes = matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before;
        if got_bytes && this.phase.get() == Phase::Idle {
            // The first byte of a request: its head has the whole deadline from here. The timer
            // is polled once so that it wakes this task even if no further byte ever comes.
            this.phase.set(Phase::Head);
            this.timer.as_mut().reset(Instant::now() + this.limit);
            let _ = this.timer.as_mut().poll(cx);
        }
        polled
    }
}

impl AsyncWrite for HeadDeadlineStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, data);
        this.wrote(&polled, data.len());
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, buffers);
        this.wrote(&polled, buffers.iter().map(|b| b.len()).sum());
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Middleware: the request's head is complete and the application has it.
pub async fn request_reached_app(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(progress) = request.conn_data::<RequestProgress>() {
        progress.0.set(Phase::InApp);
    }
    next.call(request).await
}
