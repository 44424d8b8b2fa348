//! [`Procedure`]: one remote procedure, with the types of its arguments
//! and results.

use std::fmt;
use std::marker::PhantomData;

/// One remote procedure (RFC 5531 §9: program, version, procedure number)
/// with the types of its arguments `A` and results `R`, for typed calls
/// with [`Client::call_proc`](crate::Client::call_proc).
///
/// A constant names a procedure once, so that a call cannot mix the
/// numbers of one procedure with the types of another:
///
/// ```
/// use bytes::Bytes;
/// use peerwire::Procedure;
/// use peerwire::proto::xdr::XdrString;
///
/// const KV: u32 = 0x2000_0100;
/// /// GET: a key in, its value out.
/// const GET: Procedure<XdrString, Bytes> = Procedure::new(KV, 1, 1, "GET");
///
/// # async fn get(client: &peerwire::Client) -> Result<(), peerwire::Error> {
/// let value: Bytes = client.call_proc(&GET, &XdrString::from("colour")).await?;
/// # Ok(())
/// # }
/// assert_eq!((GET.program, GET.version, GET.procedure), (KV, 1, 1));
/// ```
pub struct Procedure<A: ?Sized, R> {
    /// The program number.
    pub program: u32,
    /// The program's version.
    pub version: u32,
    /// The procedure number within the version.
    pub procedure: u32,
    /// The procedure's name, for logs and errors (rpcgen's upper-case name).
    pub name: &'static str,
    types: PhantomData<fn(&A) -> R>,
}

impl<A: ?Sized, R> Procedure<A, R> {
    /// Procedure `procedure` of `program` version `version`, called `name`.
    pub const fn new(program: u32, version: u32, procedure: u32, name: &'static str) -> Self {
        Procedure {
            program,
            version,
            procedure,
            name,
            types: PhantomData,
        }
    }
}

// By hand: derived impls would require `A` and `R` to be `Clone`, `Copy`
// and `Debug` themselves.
impl<A: ?Sized, R> Clone for Procedure<A, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<A: ?Sized, R> Copy for Procedure<A, R> {}

impl<A: ?Sized, R> fmt::Debug for Procedure<A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Procedure")
            .field("program", &self.program)
            .field("version", &self.version)
            .field("procedure", &self.procedure)
            .field("name", &self.name)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Neither `Clone` nor `Debug`: the procedure is both anyway.
    struct Opaque;

    #[test]
    fn copy_and_debug_need_nothing_of_the_types() {
        const P: Procedure<[u8], Opaque> = Procedure::new(7, 2, 3, "THREE");
        let q = P;
        let r = q;
        assert_eq!(
            (q.program, q.version, q.procedure, q.name),
            (7, 2, 3, "THREE")
        );
        assert_eq!(
            format!("{r:?}"),
            r#"Procedure { program: 7, version: 2, procedure: 3, name: "THREE" }"#
        );
    }
}
