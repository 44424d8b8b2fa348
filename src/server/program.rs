//! Typed programs: a program version whose procedures take and return XDR
//! types, served with one [`Server::program`](super::Server::program) call.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;

use super::{CallContext, HandlerFuture, ProcError, Service};
use crate::proto::xdr::{XdrDecode, from_shared};

/// One call to a [`Program`]: its context, its procedure and its
/// undecoded arguments.
#[derive(Clone, Debug)]
pub struct Call {
    /// What the server knows of the call: addresses, peer, credentials.
    pub ctx: CallContext,
    /// The procedure number.
    pub procedure: u32,
    args: Bytes,
}

impl Call {
    /// The arguments decoded as `A`, which must take all of them; anything
    /// else is [`ProcError::GarbageArgs`], which the server answers as
    /// GARBAGE_ARGS. `Bytes` and [`XdrString`](crate::proto::xdr::XdrString)
    /// fields are slices of the received arguments (no copy).
    pub fn args<A: XdrDecode>(&self) -> Result<A, ProcError> {
        from_shared(&self.args).map_err(|_| ProcError::GarbageArgs)
    }

    /// The arguments as received (XDR).
    pub fn raw_args(&self) -> &Bytes {
        &self.args
    }
}

/// A program version served by typed procedures: what a generated server
/// implements (for a type of its own that wraps the user's handlers, so
/// that no orphan rule stands in the way), and what a user without a `.x`
/// file can implement by hand.
///
/// [`Program::dispatch`] matches the procedure number, decodes the
/// arguments with [`Call::args`] (`?` turns a decode failure into
/// GARBAGE_ARGS), runs the procedure, and encodes its results. An unknown
/// procedure is [`ProcError::ProcUnavail`]. NULL (procedure 0) is answered
/// by the server and never reaches it. No `Box::pin` is written: the server
/// holds the program in an `Arc` and boxes the call's future itself (one
/// allocation per call, as for a [`Service`]).
///
/// ```
/// use bytes::Bytes;
/// use peerwire::proto::xdr::{XdrString, to_bytes};
/// use peerwire::server::{Call, Program};
/// use peerwire::{ProcError, Server, ServerOptions};
///
/// /// The user's state.
/// struct Store;
///
/// impl Store {
///     async fn get(&self, key: XdrString) -> Result<Bytes, ProcError> {
///         Ok(Bytes::from(format!("value of {key}")))
///     }
/// }
///
/// /// Version 1 of the program, over the user's state.
/// struct KvV1(Store);
///
/// impl Program for KvV1 {
///     const PROGRAM: u32 = 0x2000_0100;
///     const VERSION: u32 = 1;
///
///     async fn dispatch(&self, call: Call) -> Result<Bytes, ProcError> {
///         match call.procedure {
///             1 => Ok(to_bytes(&self.0.get(call.args()?).await?)),
///             _ => Err(ProcError::ProcUnavail),
///         }
///     }
/// }
///
/// let server = Server::new(ServerOptions::default()).program(KvV1(Store));
/// ```
pub trait Program: Send + Sync + 'static {
    /// The program number.
    const PROGRAM: u32;
    /// The version served.
    const VERSION: u32;

    /// Runs one call; returns its results as XDR, or the error to answer.
    /// See the [trait docs](Program) for what a dispatch does.
    fn dispatch(&self, call: Call) -> impl Future<Output = Result<Bytes, ProcError>> + Send;
}

/// A [`Program`] as a [`Service`].
pub(super) struct ProgramService<P>(pub Arc<P>);

impl<P: Program> Service for ProgramService<P> {
    fn call(&self, ctx: CallContext, procedure: u32, args: Bytes) -> HandlerFuture {
        let program = self.0.clone();
        let call = Call {
            ctx,
            procedure,
            args,
        };
        Box::pin(async move { program.dispatch(call).await })
    }
}
