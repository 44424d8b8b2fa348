//! What a caller task calls: one echo call, on any of the modes' clients.
//! `--mode peerwire` and `--mode tls` use [`Client`]'s `Bytes` calls,
//! whose implementation is here.

use bytes::Bytes;
use peerwire::Client;

use crate::{ECHO, PROGRAM, VERSION};

/// Something that makes an echo call; true when it succeeded with the
/// payload's length.
pub trait Caller: Send + Sync {
    fn call(&self, args: Bytes) -> CallFuture<'_>;
}

pub type CallFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>>;

impl Caller for Client {
    fn call(&self, args: Bytes) -> CallFuture<'_> {
        let len = args.len();
        Box::pin(async move {
            match Client::call(self, PROGRAM, VERSION, ECHO, args).await {
                Ok(results) => results.len() == len,
                Err(error) => {
                    eprintln!("call failed: {error}");
                    false
                }
            }
        })
    }
}
