//! Running a handler: inline when its future is ready at the first poll,
//! as a task of its own when it is not. A panic anywhere in it (making the
//! future, any poll, or dropping the future) is caught and answered with
//! SYSTEM_ERR: it harms only its own call, whose in-progress slot is freed
//! like any other's.

use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use tokio::task::JoinSet;
use tracing::{Instrument, debug_span, warn};

use super::ProcError;
use super::program::{Handler, Started};
use super::{CallContext, HandlerFuture, Shared};
use crate::conn::Dispatch;
use crate::peer::NodeId;

/// Arguments up to this size are copied out of the read buffer into a
/// shared arena, so that a handler holding them pins at most one arena
/// chunk, not the read buffer; while no handler holds any, the chunk is
/// reused in place, so small calls cost no allocation for their arguments.
/// Larger arguments are handed over without a copy: they are a good part
/// of the read buffer (at most 64 KiB, or the record itself) anyway.
const ARENA_ARGS_UP_TO: usize = 1024;

/// The arena's chunk.
const ARENA_CHUNK: usize = 8 * 1024;

/// A handler's outcome, with the XID to answer.
pub(super) type Finished = (u32, Result<Bytes, ProcError>);

/// Where a connection's handlers run.
pub(super) struct Handlers {
    /// Handlers that did not finish at once.
    pub spawned: JoinSet<Finished>,
    /// Where small arguments are copied to.
    arena: BytesMut,
}

/// The call's addresses and peer, for its [`CallContext`].
pub(super) struct Origin<'a> {
    pub observed: SocketAddr,
    pub local: SocketAddr,
    pub peer: Option<&'a NodeId>,
    pub credentials: Option<crate::peer::PeerCredentials>,
    pub tls: Option<&'a Arc<crate::tls::TlsPeer>>,
}

impl Handlers {
    pub(super) fn new() -> Handlers {
        Handlers {
            spawned: JoinSet::new(),
            arena: BytesMut::new(),
        }
    }

    /// Copies small `args` out of the read buffer (see
    /// [`ARENA_ARGS_UP_TO`]).
    fn detach(&mut self, args: Bytes) -> Bytes {
        if args.len() > ARENA_ARGS_UP_TO {
            return args;
        }
        if self.arena.capacity() < args.len() {
            // Reclaims the chunk in place when no handler holds a slice.
            self.arena.reserve(ARENA_CHUNK);
        }
        self.arena.extend_from_slice(&args);
        self.arena.split_to(args.len()).freeze()
    }

    /// Gives the arena back (the connection is quiet).
    pub(super) fn release(&mut self) {
        self.arena = BytesMut::new();
    }

    /// Starts the handler for `call`. Returns its outcome when it finished
    /// at the first poll; otherwise it runs on as a task, and its outcome
    /// comes from [`Handlers::poll_finished`].
    pub(super) fn start(
        &mut self,
        shared: &Arc<Shared>,
        call: Dispatch,
        origin: Origin<'_>,
        cx: &mut Context<'_>,
    ) -> Option<Finished> {
        let Dispatch {
            xid,
            program,
            version,
            procedure,
            cred,
            args,
        } = call;
        let service = shared
            .services
            .iter()
            .find(|(key, _)| *key == (program, version));
        let Some((_, service)) = service else {
            return Some((xid, Err(ProcError::ProcUnavail)));
        };
        let args = self.detach(args);
        let ctx = CallContext {
            observed: origin.observed,
            local: origin.local,
            xid,
            program,
            version,
            cred,
            peer: origin.peer.cloned(),
            credentials: origin.credentials,
            tls: origin.tls.cloned(),
        };
        let panicked = move |shared: &Shared| {
            shared.counters.panics.fetch_add(1, Ordering::Relaxed);
            warn!(
                xid,
                program, version, procedure, "handler panicked; answered SYSTEM_ERR"
            );
            (xid, Err(ProcError::SystemErr))
        };
        // The call's span: every event of the handler carries its XID,
        // program, version and procedure (inside the connection's span).
        let span = debug_span!("call", xid, program, version, procedure);
        let entered = span.enter();
        let mut future = match service {
            Handler::Service(service) => {
                let Ok(mut future) =
                    catch_unwind(AssertUnwindSafe(|| service.call(ctx, procedure, args)))
                else {
                    return Some(panicked(shared));
                };
                let first = catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx)));
                if !matches!(first, Ok(Poll::Pending)) {
                    // Done (or broken): dropped here, where a panic in its
                    // drop is this call's, not the connection's.
                    let dropped = drop_caught(future);
                    drop(entered);
                    return Some(match (first, dropped) {
                        (Ok(Poll::Ready(outcome)), true) => (xid, outcome),
                        _ => panicked(shared),
                    });
                }
                future
            }
            Handler::Program(program) => {
                // Made, polled and (when done) dropped inside; a panic in
                // any of it is this call's.
                let started =
                    catch_unwind(AssertUnwindSafe(|| program.start(ctx, procedure, args, cx)));
                match started {
                    Ok(Started::Done(outcome)) => return Some((xid, outcome)),
                    Ok(Started::Running(future)) => future,
                    Err(_) => return Some(panicked(shared)),
                }
            }
        };
        drop(entered);
        let shared = shared.clone();
        let run = async move {
            let outcome = AssertUnwindSafe(future.as_mut()).catch_unwind().await;
            // Dropped here, under a catch, so that the call is still
            // answered (and its slot freed) if the drop panics.
            match (outcome, drop_caught(future)) {
                (Ok(outcome), true) => (xid, outcome),
                _ => panicked(&shared),
            }
        };
        self.spawned.spawn(run.instrument(span));
        None
    }

    /// The next spawned handler to finish.
    pub(super) fn poll_finished(&mut self, cx: &mut Context<'_>) -> Poll<Option<Finished>> {
        loop {
            match self.spawned.poll_join_next(cx) {
                Poll::Ready(Some(Ok(finished))) => return Poll::Ready(Some(finished)),
                // Panics are caught inside the task; this is a task aborted
                // at the end of the shutdown grace period.
                Poll::Ready(Some(Err(_))) => continue,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Handlers still running.
    pub(super) fn running(&self) -> usize {
        self.spawned.len()
    }

    /// Stops every handler still running.
    pub(super) fn abort_all(&mut self) {
        self.spawned.abort_all();
    }
}

/// Drops a handler's future, catching a panic in its drop; false when it
/// panicked.
fn drop_caught(future: HandlerFuture) -> bool {
    catch_unwind(AssertUnwindSafe(move || drop(future))).is_ok()
}
