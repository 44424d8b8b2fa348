//! Items: the file's constants and definitions in order, each kind emitted
//! by its own module (`types`, `unions`, `programs`, `clients`,
//! `servers`), and the doc comments they all carry.

use proc_macro2::{Literal, TokenStream};
use quote::quote;

use super::super::names::screaming;
use super::super::parse::{Def, DefKind};
use super::{GResult, Gen, fault, ident};

impl Gen<'_> {
    /// Doc attributes: the `.x` file's comment, or else `fallback`.
    pub(super) fn doc(doc: &Option<String>, fallback: String) -> TokenStream {
        let text = doc.clone().unwrap_or(fallback);
        let lines = text.lines().map(|l| format!(" {l}"));
        quote!(#(#[doc = #lines])*)
    }

    pub fn file(&mut self) -> GResult<TokenStream> {
        self.check_recursion()?;
        let mut items = Vec::new();
        for d in self.defines.clone() {
            let name = screaming(&d.name);
            self.take_value(&name, &d.name, d.at)?;
            let doc = Self::doc(&None, format!("`#define {}` from the `.x` file.", d.name));
            items.push(self.constant_item(&name, self.values[&d.name], doc, d.at)?);
        }
        for def in self.defs {
            items.push(match &def.kind {
                DefKind::Const(_) => self.constant(def)?,
                DefKind::StrConst(text) => {
                    let name = screaming(&def.name);
                    self.take_value(&name, &def.name, def.at)?;
                    let id = ident(&name);
                    let doc = Self::doc(
                        &def.doc,
                        format!("`const {}` from the `.x` file.", def.name),
                    );
                    quote!(#doc pub const #id: &str = #text;)
                }
                DefKind::Enum(values) => self.enumeration(def, values)?,
                DefKind::Struct(fields) => self.structure(def, fields)?,
                DefKind::Union(u) => self.union(def, u)?,
                DefKind::Typedef(f) => self.typedef(def, f)?,
                DefKind::Program(..) => self.program(def)?,
            });
        }
        Ok(quote!(#(#items)*))
    }

    pub(super) fn constant(&mut self, def: &Def) -> GResult<TokenStream> {
        let v = self.values[&def.name];
        let name = screaming(&def.name);
        self.take_value(&name, &def.name, def.at)?;
        let doc = Self::doc(
            &def.doc,
            format!("`const {}` from the `.x` file.", def.name),
        );
        self.constant_item(&name, v, doc, def.at)
    }

    pub(super) fn constant_item(
        &self,
        name: &str,
        v: i128,
        doc: TokenStream,
        at: usize,
    ) -> GResult<TokenStream> {
        let id = ident(name);
        if let Ok(u) = u32::try_from(v) {
            let lit = Literal::u32_unsuffixed(u);
            Ok(quote!(#doc pub const #id: u32 = #lit;))
        } else if let Ok(i) = i64::try_from(v) {
            let lit = Literal::i64_unsuffixed(i);
            Ok(quote!(#doc pub const #id: i64 = #lit;))
        } else {
            fault(
                at,
                format!("constant {v} is out of range: expected a 64-bit value"),
            )
        }
    }
}
