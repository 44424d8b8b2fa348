//! Typed programs: a program version whose procedures take and return XDR
//! types, served with one [`Server::program`](super::Server::program) call.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;

use super::{CallContext, HandlerFuture, ProcError, Service};
use crate::proto::xdr::{XdrDecode, XdrEncode, from_shared, try_to_bytes};

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

    /// `results` encoded for the reply, in one buffer of exactly their
    /// size. Results with an item over the bound its XDR type sets
    /// (`opaque<N>`, `string<N>`, `T<N>`), which the caller would refuse
    /// to decode, are not sent: the call is answered SYSTEM_ERR, as
    /// rpcgen's C servers answer results their XDR cannot encode, and a
    /// warning names the procedure and the bound.
    pub fn results<R: XdrEncode + ?Sized>(&self, results: &R) -> Result<Bytes, ProcError> {
        try_to_bytes(results).map_err(|error| {
            tracing::warn!(
                program = self.ctx.program,
                version = self.ctx.version,
                procedure = self.procedure,
                peer = %self.ctx.observed,
                "results not sent, answered SYSTEM_ERR: {error}"
            );
            ProcError::SystemErr
        })
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
/// holds the program in an `Arc` and polls each call's future in a box it
/// reuses, so a call that finishes at its first poll (nothing to wait for)
/// costs no allocation; one that waits runs as a task of its own.
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

/// How the server runs a call: a [`Service`]'s boxed future, or a
/// [`Program`]'s future polled in a reused box.
#[derive(Clone)]
pub(super) enum Handler {
    Service(Arc<dyn Service>),
    Program(Arc<dyn StartCall>),
}

impl Handler {
    pub(super) fn program<P: Program>(program: P) -> Handler {
        Handler::Program(Arc::new(ProgramCalls::new(Arc::new(program), run::<P>)))
    }
}

/// What the first poll of a call's future gave.
pub(super) enum Started {
    /// It finished.
    Done(Result<Bytes, ProcError>),
    /// It runs on: the future, to be polled by a task of its own.
    Running(HandlerFuture),
}

/// Makes a call's future and polls it once with `cx`. A panic in any of
/// it is the caller's to catch.
pub(super) trait StartCall: Send + Sync + 'static {
    fn start(&self, ctx: CallContext, procedure: u32, args: Bytes, cx: &mut Context<'_>)
    -> Started;
}

/// A call of `P`, as a future that owns what it needs.
async fn run<P: Program>(program: Arc<P>, call: Call) -> Result<Bytes, ProcError> {
    program.dispatch(call).await
}

/// Boxes kept for calls' futures: enough for the connection tasks that
/// start calls at the same instant (one each, given back at once when the
/// call finishes at its first poll).
const SPARE_SLOTS: usize = 16;

/// A program's calls. A call's future is made in a box taken from the
/// spares and polled there; when it finishes at that first poll (a
/// handler with nothing to wait for), it is dropped in place and the box
/// goes back to the spares: no allocation. One that waits keeps its box
/// and runs as a task of its own.
struct ProgramCalls<P, F, Mk> {
    program: Arc<P>,
    make: Mk,
    spare: Mutex<Vec<Pin<Box<Option<F>>>>>,
}

impl<P, F, Mk> ProgramCalls<P, F, Mk>
where
    Mk: Fn(Arc<P>, Call) -> F,
{
    /// Names `F`, the type `make` returns, without writing it.
    fn new(program: Arc<P>, make: Mk) -> Self {
        ProgramCalls {
            program,
            make,
            spare: Mutex::new(Vec::new()),
        }
    }
}

impl<P, F, Mk> StartCall for ProgramCalls<P, F, Mk>
where
    P: Program,
    F: Future<Output = Result<Bytes, ProcError>> + Send + 'static,
    Mk: Fn(Arc<P>, Call) -> F + Send + Sync + 'static,
{
    fn start(
        &self,
        ctx: CallContext,
        procedure: u32,
        args: Bytes,
        cx: &mut Context<'_>,
    ) -> Started {
        let spare = |s: &Mutex<Vec<_>>| s.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut slot = spare(&self.spare).unwrap_or_else(|| Box::pin(None));
        let call = Call {
            ctx,
            procedure,
            args,
        };
        slot.set(Some((self.make)(self.program.clone(), call)));
        let future = slot.as_mut().as_pin_mut().expect("set above");
        match future.poll(cx) {
            Poll::Ready(outcome) => {
                // Dropped here: a panic in its drop is the caller's to
                // catch, and the box is not kept.
                slot.set(None);
                let mut spare = self.spare.lock().unwrap_or_else(|p| p.into_inner());
                if spare.len() < SPARE_SLOTS {
                    spare.push(slot);
                }
                Started::Done(outcome)
            }
            Poll::Pending => Started::Running(Box::pin(InSlot(slot))),
        }
    }
}

/// A future in its slot, polled until done.
struct InSlot<F>(Pin<Box<Option<F>>>);

impl<F: Future> Future for InSlot<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        match self.0.as_mut().as_pin_mut() {
            Some(future) => future.poll(cx),
            None => unreachable!("a slot holds its future until it is dropped"),
        }
    }
}
