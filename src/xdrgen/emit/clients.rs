//! A version's typed client: a struct around a `Client` with one method
//! per procedure.

use proc_macro2::TokenStream;
use quote::quote;

use super::super::names::upper_camel;
use super::programs::{ProcParts, VersionNames};
use super::{GResult, Gen, ident};

impl Gen<'_> {
    /// A version's typed client.
    pub(super) fn client(
        &mut self,
        v: &VersionNames<'_>,
        methods: &[TokenStream],
    ) -> GResult<TokenStream> {
        let krate = self.krate.clone();
        let client = format!("{}Client", upper_camel(v.version));
        self.take_type(&client, &format!("{} (its client)", v.version), v.at)?;
        let cid = ident(&client);
        let cdoc = format!(
            " A typed client of version `{}` ({}) of program `{}`: one method per procedure.",
            v.version, v.n, v.program
        );
        Ok(quote! {
            #[doc = #cdoc]
            #[derive(Clone, Debug)]
            pub struct #cid {
                client: #krate::Client,
            }
            impl #cid {
                /// Calls through `client`, a connection to the program's server.
                pub fn new(client: #krate::Client) -> #cid {
                    #cid { client }
                }
                /// The connection.
                pub fn client(&self) -> &#krate::Client {
                    &self.client
                }
                #(#methods)*
            }
        })
    }

    /// One procedure's method of a version's client.
    pub(super) fn client_method(&self, parts: &ProcParts<'_>) -> TokenStream {
        let krate = &self.krate;
        let ProcParts {
            p,
            n: pn,
            pid,
            arg,
            res,
            method,
        } = parts;
        let mdoc = Self::doc(&p.doc, format!("Calls `{}` (procedure {pn}).", p.name));
        let (param, args) = if p.arg.is_none() {
            (quote!(), quote!(&()))
        } else {
            (quote!(, args: &#arg), quote!(args))
        };
        quote! {
            #mdoc
            ///
            /// Cancel-safe, as `peerwire::Client::call`.
            pub async fn #method(&self #param) -> ::core::result::Result<#res, #krate::Error> {
                self.client.call_proc(&#pid, #args).await
            }
        }
    }
}
