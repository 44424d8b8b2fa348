//! `--mode typed` and `--typed-server`: typed calls ([`Client::call_proc`])
//! and a typed [`Program`], as generated code would make them.

use bytes::Bytes;
use peerwire::proto::DecodeError;
use peerwire::proto::xdr::{XdrDecode, XdrEncode, XdrReader, XdrWriter};
use peerwire::server::{Call, Program};
use peerwire::{Client, ProcError, Procedure};

use crate::caller::{CallFuture, Caller};
use crate::{ECHO, PROGRAM, VERSION};

/// The typed echo's arguments and results: one `opaque<>` field, as a
/// generated `struct echo_args { opaque data<>; }` would be.
struct EchoArgs {
    data: Bytes,
}

impl XdrEncode for EchoArgs {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.opaque(&self.data);
    }
}

impl XdrDecode for EchoArgs {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, DecodeError> {
        Ok(EchoArgs {
            data: r.opaque_bytes(u32::MAX)?,
        })
    }
}

const TYPED_ECHO: Procedure<EchoArgs, EchoArgs> = Procedure::new(PROGRAM, VERSION, ECHO, "ECHO");

/// The typed echo as a program, as generated dispatch would be.
pub struct TypedEchoServer;

impl Program for TypedEchoServer {
    const PROGRAM: u32 = PROGRAM;
    const VERSION: u32 = VERSION;

    async fn dispatch(&self, call: Call) -> Result<Bytes, ProcError> {
        match call.procedure {
            ECHO => call.results(&call.args::<EchoArgs>()?),
            _ => Err(ProcError::ProcUnavail),
        }
    }
}

/// A client making typed calls. The data is 4 bytes shorter than the
/// payload: with its length, the same bytes go on the wire.
pub struct TypedClient(pub Client);

impl Caller for TypedClient {
    fn call(&self, args: Bytes) -> CallFuture<'_> {
        Box::pin(async move {
            let args = EchoArgs {
                data: args.slice(args.len().min(4)..),
            };
            match self.0.call_proc(&TYPED_ECHO, &args).await {
                Ok(results) => results.data.len() == args.data.len(),
                Err(error) => {
                    eprintln!("call failed: {error}");
                    false
                }
            }
        })
    }
}

// ---- TLS -------------------------------------------------------------------
