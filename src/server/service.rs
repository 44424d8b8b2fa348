//! What a user serves: the [`Service`] trait its handlers implement, the
//! [`CallContext`] each call brings, and the future a handler returns.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

use crate::peer::{NodeId, PeerCredentials};
use crate::proto::{AcceptStatus, AuthStat, OpaqueAuth, Rejection, ReplyBody};

/// Why a handler did not produce results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProcError {
    /// The procedure does not exist (PROC_UNAVAIL).
    ProcUnavail,
    /// The arguments did not decode (GARBAGE_ARGS).
    GarbageArgs,
    /// The handler failed or panicked (SYSTEM_ERR).
    SystemErr,
    /// The service refuses the call's credentials: the reply is
    /// MSG_DENIED with AUTH_ERROR and this `auth_stat`, as libtirpc's
    /// `svcerr_auth` (`svcerr_weakauth` is [`AuthStat::TOO_WEAK`]). The
    /// client's call fails with
    /// [`CallStatus::AuthError`](crate::CallStatus::AuthError) carrying it.
    /// The connection goes on.
    AuthError(AuthStat),
}

impl ProcError {
    /// The reply body that says this error.
    pub(super) fn body(self) -> ReplyBody {
        match self {
            ProcError::ProcUnavail => ReplyBody::accepted(AcceptStatus::ProcUnavail),
            ProcError::GarbageArgs => ReplyBody::accepted(AcceptStatus::GarbageArgs),
            ProcError::SystemErr => ReplyBody::accepted(AcceptStatus::SystemErr),
            ProcError::AuthError(stat) => ReplyBody::Denied(Rejection::AuthError(stat)),
        }
    }
}

/// What a handler learns about its call.
///
/// On a Unix socket, `observed` and `local` are the unspecified address
/// `0.0.0.0:0` (a Unix peer has no address) and `credentials` says who the
/// peer is.
#[derive(Clone, Debug)]
pub struct CallContext {
    /// The peer's address as this server observed it (`0.0.0.0:0` on a
    /// Unix socket).
    pub observed: SocketAddr,
    /// The local address the call arrived on (`0.0.0.0:0` on a Unix
    /// socket).
    pub local: SocketAddr,
    /// The call's XID.
    pub xid: u32,
    /// The program.
    pub program: u32,
    /// The version.
    pub version: u32,
    /// The caller's credential.
    pub cred: OpaqueAuth,
    /// The peer's node ID, when the server has an identity and the peer's
    /// HELLO succeeded (always, for calls that reach a handler then, except
    /// on Unix sockets, which have no HELLO).
    pub peer: Option<NodeId>,
    /// On a Unix socket: the connecting process's credentials
    /// (`SO_PEERCRED`). `None` on TCP.
    pub credentials: Option<PeerCredentials>,
    /// Over TLS: the peer's certificate (already checked against the
    /// observed address and, with an identity, the node ID).
    pub tls: Option<Arc<crate::tls::TlsPeer>>,
}

/// The future a [`Service`] returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Bytes, ProcError>> + Send>>;

/// A program version's procedures. NULL (procedure 0) is answered by the
/// server and never reaches the service.
///
/// Closures `Fn(CallContext, u32, Bytes) -> impl Future<Output =
/// Result<Bytes, ProcError>>` are services.
///
/// # Blocking
///
/// Handlers run on the server's runtime: a handler's future is polled
/// first on its connection's task (and answered inline if it is ready at
/// once), then, if it is not, as a task of its own. A handler that blocks
/// its thread (`std::thread::sleep`, blocking file or socket I/O, a long
/// computation, a `std::sync::Mutex` held while waiting) stalls that
/// runtime worker, and every connection and timer it runs, for as long as
/// it blocks: on a current-thread runtime, the whole server. Await tokio's
/// async equivalents (`tokio::time::sleep`, `tokio::fs`), or move the
/// blocking work to tokio's blocking pool with
/// [`tokio::task::spawn_blocking`] and await its handle:
///
/// ```
/// use bytes::Bytes;
/// use peerwire::{ProcError, Server, ServerOptions};
///
/// # fn checksum(data: &[u8]) -> Bytes { Bytes::copy_from_slice(&data[..data.len().min(4)]) }
/// let server = Server::new(ServerOptions::default()).service(
///     0x2000_0001,
///     1,
///     |_ctx, _procedure, args: Bytes| async move {
///         // Slow and blocking: off the runtime's workers.
///         tokio::task::spawn_blocking(move || checksum(&args))
///             .await
///             .map_err(|_| ProcError::SystemErr)
///     },
/// );
/// ```
///
/// A service on a struct of its own (shared state behind an `Arc` inside
/// it: `impl Service for Arc<State>` would break the orphan rule):
///
/// ```
/// use std::sync::{Arc, atomic::{AtomicU64, Ordering}};
/// use bytes::Bytes;
/// use peerwire::{CallContext, HandlerFuture, ProcError, Server, ServerOptions, Service};
///
/// #[derive(Clone, Default)]
/// struct Counter(Arc<AtomicU64>);
///
/// impl Service for Counter {
///     fn call(&self, _ctx: CallContext, procedure: u32, _args: Bytes) -> HandlerFuture {
///         let calls = self.0.clone(); // the future is 'static: it cannot borrow `self`
///         Box::pin(async move {
///             match procedure {
///                 1 => {
///                     let n = calls.fetch_add(1, Ordering::Relaxed) + 1;
///                     Ok(Bytes::copy_from_slice(&n.to_be_bytes()))
///                 }
///                 _ => Err(ProcError::ProcUnavail),
///             }
///         })
///     }
/// }
///
/// let server = Server::new(ServerOptions::default()).service(0x2000_0003, 1, Counter::default());
/// ```
pub trait Service: Send + Sync + 'static {
    /// Runs `procedure` with its undecoded `args`; returns the undecoded
    /// results. Return [`ProcError::ProcUnavail`] for an unknown procedure,
    /// and [`ProcError::AuthError`] to refuse the call's credentials.
    fn call(&self, ctx: CallContext, procedure: u32, args: Bytes) -> HandlerFuture;
}

impl<F, Fut> Service for F
where
    F: Fn(CallContext, u32, Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Bytes, ProcError>> + Send + 'static,
{
    fn call(&self, ctx: CallContext, procedure: u32, args: Bytes) -> HandlerFuture {
        Box::pin(self(ctx, procedure, args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_proc_error_is_answered_with_its_reply_body() {
        assert_eq!(
            ProcError::ProcUnavail.body(),
            ReplyBody::accepted(AcceptStatus::ProcUnavail)
        );
        assert_eq!(
            ProcError::GarbageArgs.body(),
            ReplyBody::accepted(AcceptStatus::GarbageArgs)
        );
        assert_eq!(
            ProcError::SystemErr.body(),
            ReplyBody::accepted(AcceptStatus::SystemErr)
        );
        assert_eq!(
            ProcError::AuthError(AuthStat::TOO_WEAK).body(),
            ReplyBody::Denied(Rejection::AuthError(AuthStat::TOO_WEAK))
        );
    }
}
