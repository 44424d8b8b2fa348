//! A version's server: the trait a user implements, one method per
//! procedure, and the `Program` that decodes each call and dispatches it.

use proc_macro2::{Literal, TokenStream};
use quote::quote;

use super::super::names::upper_camel;
use super::programs::{ProcParts, VersionNames};
use super::{GResult, Gen, ident};

impl Gen<'_> {
    /// A version's server trait and the program that serves it.
    pub(super) fn server(
        &mut self,
        v: &VersionNames<'_>,
        handlers: &[TokenStream],
        arms: &[TokenStream],
    ) -> GResult<TokenStream> {
        let krate = self.krate.clone();
        let (prog_id, vid) = (v.prog_id, v.vid);
        let server = format!("{}Server", upper_camel(v.version));
        self.take_type(&server, &format!("{} (its server trait)", v.version), v.at)?;
        let sid = ident(&server);
        let program = format!("{}Program", upper_camel(v.version));
        self.take_type(&program, &format!("{} (its server)", v.version), v.at)?;
        let pgid = ident(&program);
        let sdoc = format!(
            " The procedures of version `{}` ({}) of program `{}`, as a server runs them: \
             one method per procedure, given the call's context (observed address, peer, \
             credentials) and its decoded arguments. Serve an implementation with \
             `Server::program({program}(handlers))`.\n\n \
             A method may be written as an `async fn`; its future must be `Send`. \
             Procedure 0 (NULL) is answered by the server and has no method.",
            v.version, v.n, v.program
        );
        let pdoc = format!(
            " Version `{}` ({}) of program `{}` served by a [`{server}`]: \
             `Server::program({program}(handlers))` registers it. Undecodable arguments \
             are answered GARBAGE_ARGS and an unknown procedure PROC_UNAVAIL.",
            v.version, v.n, v.program
        );
        Ok(quote! {
            #[doc = #sdoc]
            pub trait #sid: ::core::marker::Send + ::core::marker::Sync + 'static {
                #(#handlers)*
            }
            #[doc = #pdoc]
            #[derive(Clone, Debug, Default)]
            pub struct #pgid<T>(pub T);
            impl<T: #sid> #krate::server::Program for #pgid<T> {
                const PROGRAM: u32 = #prog_id;
                const VERSION: u32 = #vid;
                async fn dispatch(&self, call: #krate::server::Call)
                    -> ::core::result::Result<#krate::bytes::Bytes, #krate::ProcError> {
                    match call.procedure {
                        #(#arms)*
                        _ => ::core::result::Result::Err(#krate::ProcError::ProcUnavail),
                    }
                }
            }
        })
    }

    /// One procedure (not NULL) of a version's server: its method of the
    /// server trait, and its arm of the program's dispatch.
    pub(super) fn server_procedure(&self, parts: &ProcParts<'_>) -> (TokenStream, TokenStream) {
        let krate = &self.krate;
        let ProcParts {
            p,
            n: pn,
            arg,
            res,
            method,
            ..
        } = parts;
        let plit = Literal::u32_unsuffixed(*pn);
        let hdoc = Self::doc(&p.doc, format!("Runs `{}` (procedure {pn}).", p.name));
        let (hparam, harg) = if p.arg.is_none() {
            (quote!(), quote!())
        } else {
            (quote!(, args: #arg), quote!(, call.args::<#arg>()?))
        };
        let check = if p.arg.is_none() {
            quote!(call.args::<()>()?;)
        } else {
            quote!()
        };
        let handler = quote! {
            #hdoc
            fn #method(&self, ctx: &#krate::CallContext #hparam)
                -> impl ::core::future::Future<Output = ::core::result::Result<#res, #krate::ProcError>> + ::core::marker::Send;
        };
        let reply = if p.result.is_none() {
            quote! {
                self.0.#method(&call.ctx #harg).await?;
                ::core::result::Result::Ok(#krate::bytes::Bytes::new())
            }
        } else {
            quote! {
                let res = self.0.#method(&call.ctx #harg).await?;
                call.results(&res)
            }
        };
        let arm = quote! {
            #plit => {
                #check
                #reply
            }
        };
        (handler, arm)
    }
}
