//! The handler pipeline of one connection: frames accepted by the read task wait here for their handler,
//! and run one at a time, in arrival order, while the read task goes on reading.
//!
//! The read task polls the running job and the socket together, so nothing that needs no handler waits
//! for one: `$ping`, answers to the server's own requests (`$reply`/`$error`), WebSocket control frames,
//! size checks and rate limiting are handled as the frames arrive. A handler can therefore await
//! [`Client::request`](crate::Client::request) to its own client, or run longer than `pong_timeout`,
//! without its connection starving.
//!
//! Waiting jobs are bounded by `inbound_queue_capacity` frames and `inbound_queue_max_bytes` (one frame
//! larger than the byte bound still fits an empty queue); the caller refuses a frame past either bound.
//! The `on_connect` hooks are the first jobs, so a client's first handler sees what they did.
//!
//! Starting a job calls user code (middleware, the handler's synchronous part), so it happens under
//! `catch_unwind` like polling: a panic anywhere in a job is a handler panic.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::FutureExt;
use futures_util::future::CatchUnwind;
use prometheus_client::metrics::histogram::Histogram;

use crate::client::Client;
use crate::error::Error;
use crate::handler::{BoxFuture, Next, Reply, Request};
use crate::raw::{RawHandler, RawMessage};
use crate::server::Server;
use crate::stats::bump;

/// A frame routed to its handler, not started yet.
pub(crate) struct Call {
    pub(crate) id: Option<u64>,
    next: Next,
    request: Request,
    /// Where the handler's duration is recorded.
    pub(crate) duration: Histogram,
}

impl Call {
    pub(crate) fn new(id: Option<u64>, next: Next, request: Request, duration: Histogram) -> Self {
        Self {
            id,
            next,
            request,
            duration,
        }
    }

    /// The message's type.
    pub(crate) fn kind(&self) -> &str {
        self.request.kind()
    }

    /// Starts the middleware chain, which ends in the handler: user code runs in this call already.
    pub(crate) fn start(self) -> BoxFuture<Result<Reply, Error>> {
        self.next.run(self.request)
    }
}

/// Bounds a hook by `hook_timeout`: one still running then is dropped and reported to `on_error`, so a
/// hung hook cannot keep its client's slot, registry entry and groups.
pub(crate) fn bounded_hook(
    client: &Client,
    hook: crate::handler::BoxFuture<()>,
) -> crate::handler::BoxFuture<()> {
    let client = client.clone();
    Box::pin(async move {
        let limit = client.server().node().config.hook_timeout;
        if tokio::time::timeout(limit, hook).await.is_err() {
            let err = Error::internal(format!("hook still running after {limit:?}: dropped"));
            client.server().app().hooks.error(&client, &err);
        }
    })
}

/// Counts a panic and reports it to `on_error`; the caller closes the client with 1011.
pub(crate) fn handler_panicked(
    server: &Server,
    client: &Client,
    panic: &(dyn std::any::Any + Send),
) -> Error {
    bump(&server.node().stats.handler_panics);
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "handler panicked".to_owned());
    let err = Error::internal(format!("panic: {text}"));
    server.app().hooks.error(client, &err);
    err
}

/// Work for the pipeline: a hook or a frame's handler.
pub(super) enum Job {
    /// The `on_connect` hook with this index.
    Connect(usize),
    Call(Call),
    Raw(RawHandler, RawMessage),
}

/// How a job ended.
pub(super) enum Finished {
    /// A handler call for the request `id` (if any); `Err` is a panic.
    Call(Option<u64>, std::thread::Result<Result<Reply, Error>>),
    /// A hook or a raw handler; `Err` is a panic.
    Unit(std::thread::Result<()>),
}

type Guarded<T> = CatchUnwind<AssertUnwindSafe<BoxFuture<T>>>;

enum Running {
    /// A handler call, polled inside its `ws.message` span.
    Call(RunningCall),
    Unit(Guarded<()>),
    /// The job panicked while it was being started.
    Panicked(Option<Finished>),
}

/// A running handler call.
struct RunningCall {
    /// The request id, if the frame was a request.
    id: Option<u64>,
    fut: Guarded<Result<Reply, Error>>,
    span: tracing::Span,
    started: Instant,
    duration: Histogram,
}

/// Why a frame was refused.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Overloaded;

pub(super) struct Pipeline<'a> {
    server: &'a Server,
    client: &'a Client,
    running: Option<Running>,
    waiting: VecDeque<(Job, usize)>,
    /// Frames among the waiting jobs (hooks do not count against the bounds).
    waiting_frames: usize,
    waiting_bytes: usize,
}

impl<'a> Pipeline<'a> {
    pub(super) fn new(server: &'a Server, client: &'a Client) -> Self {
        let waiting = (0..server.app().hooks.on_connect.len()).map(|i| (Job::Connect(i), 0));
        Self {
            server,
            client,
            running: None,
            waiting: waiting.collect(),
            waiting_frames: 0,
            waiting_bytes: 0,
        }
    }

    /// Starts a frame's job of `len` bytes, or queues it behind the others.
    pub(super) fn push(&mut self, job: Job, len: usize) -> Result<(), Overloaded> {
        if self.is_idle() {
            // The common case, a client that waits for its answers: no queue is ever allocated.
            self.running = Some(start(job, self.server, self.client));
            return Ok(());
        }
        let config = &self.server.node().config;
        if self.waiting_frames >= config.inbound_queue_capacity
            || (self.waiting_bytes > 0 && self.waiting_bytes + len > config.inbound_queue_max_bytes)
        {
            return Err(Overloaded);
        }
        self.waiting.push_back((job, len));
        self.waiting_frames += 1;
        self.waiting_bytes += len;
        Ok(())
    }

    /// Whether no job runs or waits.
    pub(super) fn is_idle(&self) -> bool {
        self.running.is_none() && self.waiting.is_empty()
    }

    pub(super) fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Starts the next waiting job if none runs.
    pub(super) fn start_next(&mut self) {
        if self.running.is_some() {
            return;
        }
        let Some((job, len)) = self.waiting.pop_front() else {
            return;
        };
        if !matches!(job, Job::Connect(_)) {
            self.waiting_frames -= 1;
        }
        self.waiting_bytes -= len;
        if self.waiting.is_empty() {
            // A drained burst gives its buffer back: an idle connection holds none.
            self.waiting = VecDeque::new();
        }
        self.running = Some(start(job, self.server, self.client));
    }

    /// Waits for the running job to end; pending forever when none runs (guard the call with
    /// [`is_running`](Self::is_running)).
    pub(super) async fn finished(&mut self) -> Finished {
        std::future::poll_fn(|cx| self.poll_finished(cx)).await
    }

    fn poll_finished(&mut self, cx: &mut Context<'_>) -> Poll<Finished> {
        let Some(running) = &mut self.running else {
            return Poll::Pending;
        };
        let finished = match running {
            Running::Call(call) => match call.span.in_scope(|| Pin::new(&mut call.fut).poll(cx)) {
                Poll::Ready(result) => {
                    call.duration.observe(call.started.elapsed().as_secs_f64());
                    Finished::Call(call.id, result)
                }
                Poll::Pending => return Poll::Pending,
            },
            Running::Unit(fut) => match Pin::new(fut).poll(cx) {
                Poll::Ready(result) => Finished::Unit(result),
                Poll::Pending => return Poll::Pending,
            },
            Running::Panicked(finished) => match finished.take() {
                Some(finished) => finished,
                None => return Poll::Pending,
            },
        };
        self.running = None;
        Poll::Ready(finished)
    }
}

fn start(job: Job, server: &Server, client: &Client) -> Running {
    match job {
        Job::Connect(index) => {
            let hook = &server.app().hooks.on_connect[index];
            unit(catch_unwind(AssertUnwindSafe(|| {
                bounded_hook(client, hook(client.clone()))
            })))
        }
        Job::Raw(raw, msg) => unit(catch_unwind(AssertUnwindSafe(|| raw(client.clone(), msg)))),
        Job::Call(call) => {
            let id = call.id;
            let span = tracing::debug_span!(target: "ws_core::handler", "ws.message", r#type = call.kind(), id);
            let duration = call.duration.clone();
            let started = Instant::now();
            match span.in_scope(|| catch_unwind(AssertUnwindSafe(|| call.start()))) {
                Ok(fut) => Running::Call(RunningCall {
                    id,
                    fut: AssertUnwindSafe(fut).catch_unwind(),
                    span,
                    started,
                    duration,
                }),
                Err(panic) => Running::Panicked(Some(Finished::Call(id, Err(panic)))),
            }
        }
    }
}

fn unit(started: std::thread::Result<BoxFuture<()>>) -> Running {
    match started {
        Ok(fut) => Running::Unit(AssertUnwindSafe(fut).catch_unwind()),
        Err(panic) => Running::Panicked(Some(Finished::Unit(Err(panic)))),
    }
}
