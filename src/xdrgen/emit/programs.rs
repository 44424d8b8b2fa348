//! Programs: the program, version and procedure constants, and per
//! version the typed client (`clients`) and server (`servers`).

use std::collections::{HashMap, HashSet};

use proc_macro2::{Ident, Literal, TokenStream};
use quote::quote;

use super::super::names::{screaming, snake};
use super::super::parse::{Def, DefKind, Procedure, Type};
use super::{GResult, Gen, fault, ident};

/// The client's method names for a version's procedures: snake_case,
/// without the longest prefix ending in `_` that all of them share
/// (`KV_GET` and `KV_PUT` become `get` and `put`, `GF_DUMP_DUMP` and
/// `GF_DUMP_PING` become `dump` and `ping`), unless that leaves a name
/// empty or a clash.
fn method_names(procs: &[&str]) -> HashMap<String, String> {
    let full = |p: &&str| (p.to_string(), snake(p));
    let first = procs.first().copied().unwrap_or("");
    let prefix = first
        .match_indices('_')
        .map(|(i, _)| &first[..=i])
        .rev()
        .find(|prefix| {
            procs.len() >= 2
                && procs
                    .iter()
                    .all(|p| p.starts_with(prefix) && p.len() > prefix.len())
        })
        .unwrap_or("");
    let names: HashMap<String, String> = procs
        .iter()
        .map(|p| (p.to_string(), snake(&p[prefix.len()..])))
        .collect();
    let distinct: HashSet<&String> = names.values().collect();
    let names = if distinct.len() == procs.len() {
        names
    } else {
        procs.iter().map(full).collect()
    };
    // The client's own `new` and `client` keep their names.
    names
        .into_iter()
        .map(|(p, m)| match m.as_str() {
            "new" | "client" => (p, format!("{m}_")),
            _ => (p, m),
        })
        .collect()
}

impl Gen<'_> {
    pub(super) fn proc_type(&self, t: &Option<Type>) -> GResult<TokenStream> {
        match t {
            None => Ok(quote!(())),
            Some(Type::Float | Type::Double) => fault(
                0,
                "a float or double argument or result: expected a named type (`typedef double real;`)",
            ),
            Some(t) => self.base(t),
        }
    }

    pub(super) fn program(&mut self, def: &Def) -> GResult<TokenStream> {
        let DefKind::Program(versions, number) = &def.kind else {
            unreachable!()
        };
        let krate = self.krate.clone();
        let mut items = Vec::new();
        let prog = screaming(&def.name);
        self.take_value(&prog, &def.name, def.at)?;
        let prog_id = ident(&prog);
        let prog_n = self.resolve(number)?;
        let Ok(prog_n) = u32::try_from(prog_n) else {
            return fault(
                def.at,
                format!("program number {prog_n} is out of range: expected 0 to 4294967295"),
            );
        };
        let lit = Literal::u32_unsuffixed(prog_n);
        let doc = Self::doc(&def.doc, format!("Program `{}`.", def.name));
        items.push(quote!(#doc pub const #prog_id: u32 = #lit;));
        let mut count: HashMap<&str, usize> = HashMap::new();
        for v in versions {
            for p in &v.procedures {
                *count.entry(&p.name).or_default() += 1;
            }
        }
        let mut seen_versions = HashSet::new();
        for v in versions {
            let vname = screaming(&v.name);
            let n = self.resolve(&v.number)?;
            let Ok(n) = u32::try_from(n) else {
                return fault(
                    v.at,
                    format!("version number {n} is out of range: expected 0 to 4294967295"),
                );
            };
            if !seen_versions.insert(n) {
                return fault(
                    v.at,
                    format!("version {n} of program `{}` is defined twice", def.name),
                );
            }
            let vid = ident(&vname);
            // rpcgen files repeat a version's name in another program only by mistake,
            // but a version constant may equal its number's other name: check clashes.
            self.take_value(&vname, &v.name, v.at)?;
            let lit = Literal::u32_unsuffixed(n);
            let doc = Self::doc(
                &v.doc,
                format!("Version `{}` of program `{}`.", v.name, def.name),
            );
            items.push(quote!(#doc pub const #vid: u32 = #lit;));
            let mut seen_procs = HashSet::new();
            let method_names = method_names(
                &v.procedures
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>(),
            );
            let mut methods = Vec::new();
            let mut handlers = Vec::new();
            let mut arms = Vec::new();
            for p in &v.procedures {
                let pn = self.resolve(&p.number)?;
                let Ok(pn) = u32::try_from(pn) else {
                    return fault(
                        p.at,
                        format!("procedure number {pn} is out of range: expected 0 to 4294967295"),
                    );
                };
                if !seen_procs.insert(pn) {
                    return fault(
                        p.at,
                        format!(
                            "procedure number {pn} is used twice in version `{}`",
                            v.name
                        ),
                    );
                }
                let name = if count[p.name.as_str()] > 1 {
                    format!("{}_V{n}", screaming(&p.name))
                } else {
                    screaming(&p.name)
                };
                self.take_value(&name, &p.name, p.at)?;
                let pid = ident(&name);
                let arg = self
                    .proc_type(&p.arg)
                    .or_else(|e| fault(if e.at == 0 { p.at } else { e.at }, e.message))?;
                let res = self
                    .proc_type(&p.result)
                    .or_else(|e| fault(if e.at == 0 { p.at } else { e.at }, e.message))?;
                let plit = Literal::u32_unsuffixed(pn);
                let pname = &p.name;
                let doc = Self::doc(&p.doc, format!("Procedure {pn} of version `{}`.", v.name));
                items.push(quote! {
                    #doc
                    pub const #pid: #krate::Procedure<#arg, #res> =
                        #krate::Procedure::new(#prog_id, #vid, #plit, #pname);
                });
                let method = ident(&method_names[&p.name]);
                let parts = ProcParts {
                    p,
                    n: pn,
                    pid: &pid,
                    arg: &arg,
                    res: &res,
                    method: &method,
                };
                methods.push(self.client_method(&parts));
                // NULL (procedure 0) is answered by the server itself.
                if pn == 0 {
                    continue;
                }
                let (handler, arm) = self.server_procedure(&parts);
                handlers.push(handler);
                arms.push(arm);
            }
            let names = VersionNames {
                version: &v.name,
                program: &def.name,
                at: v.at,
                n,
                prog_id: &prog_id,
                vid: &vid,
            };
            if self.opts.clients {
                items.push(self.client(&names, &methods)?);
            }
            if self.opts.servers {
                items.push(self.server(&names, &handlers, &arms)?);
            }
        }
        Ok(quote!(#(#items)*))
    }
}

/// One procedure, as its client method and its server method see it.
pub(super) struct ProcParts<'a> {
    pub(super) p: &'a Procedure,
    /// Its number.
    pub(super) n: u32,
    /// Its `Procedure` constant.
    pub(super) pid: &'a Ident,
    /// Its argument's and result's Rust types.
    pub(super) arg: &'a TokenStream,
    pub(super) res: &'a TokenStream,
    /// The name of its method, on the client and on the server trait.
    pub(super) method: &'a Ident,
}

/// What a version's client and server are named after.
pub(super) struct VersionNames<'a> {
    pub(super) version: &'a str,
    pub(super) program: &'a str,
    pub(super) at: usize,
    pub(super) n: u32,
    pub(super) prog_id: &'a Ident,
    pub(super) vid: &'a Ident,
}
