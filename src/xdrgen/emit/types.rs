//! Enums, structs and typedefs, each with its `XdrEncode`/`XdrDecode`
//! impls.

use std::collections::{HashMap, HashSet};

use proc_macro2::{Literal, TokenStream};
use quote::quote;

use super::super::names::{screaming, snake, upper_camel};
use super::super::parse::{Def, EnumValue, Field};
use super::{Arg, GResult, Gen, Kind, fault, ident};

/// A variant's name: the value's name in UpperCamel without the enum's
/// name in front (`STATUS_OK` of `status` becomes `Ok`), as prost does.
pub(super) fn variant_name(enum_name: &str, value: &str) -> String {
    let e = upper_camel(enum_name);
    let v = upper_camel(value);
    match v.strip_prefix(e.as_str()) {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_uppercase()) => rest.to_owned(),
        _ => v,
    }
}

impl Gen<'_> {
    pub(super) fn enumeration(&mut self, def: &Def, values: &[EnumValue]) -> GResult<TokenStream> {
        let xdr = &self.xdr;
        let (de, dek) = (&self.de, &self.dek);
        let id = ident(&upper_camel(&def.name));
        let mut seen_names = HashSet::new();
        let mut seen_values: HashMap<i32, String> = HashMap::new();
        let mut variants = Vec::new();
        let mut arms = Vec::new();
        let mut aliases = Vec::new();
        for v in values {
            let n = self.values[&v.name];
            let Ok(n) = i32::try_from(n) else {
                return fault(
                    v.at,
                    format!("enum value {n} is out of range: expected a 32-bit signed int"),
                );
            };
            if let Some(prev) = seen_values.get(&n) {
                // A second name for a value: an associated constant.
                let alias = screaming(&v.name);
                if !seen_names.insert(alias.clone()) {
                    return fault(
                        v.at,
                        format!(
                            "two values of enum `{}` become `{alias}`: rename one",
                            def.name
                        ),
                    );
                }
                let aid = ident(&alias);
                let target = ident(&variant_name(&def.name, prev));
                let doc = Self::doc(
                    &v.doc,
                    format!("`{}`, another name for `{prev}` ({n}).", v.name),
                );
                aliases.push(quote!(#doc pub const #aid: #id = #id::#target;));
                continue;
            }
            seen_values.insert(n, v.name.clone());
            let vn = variant_name(&def.name, &v.name);
            if !seen_names.insert(vn.clone()) {
                return fault(
                    v.at,
                    format!(
                        "two values of enum `{}` become the Rust variant `{vn}`: rename one",
                        def.name
                    ),
                );
            }
            let vid = ident(&vn);
            let lit = Literal::i32_unsuffixed(n);
            let doc = Self::doc(&v.doc, format!("`{}` ({n}).", v.name));
            variants.push(quote!(#doc #vid = #lit,));
            arms.push(quote!(#lit => Ok(#id::#vid),));
        }
        let aliases = if aliases.is_empty() {
            quote!()
        } else {
            quote!(impl #id { #(#aliases)* })
        };
        let doc = Self::doc(&def.doc, format!("`enum {}` from the `.x` file.", def.name));
        let msg = format!("unknown value of enum {}", def.name);
        Ok(quote! {
            #doc
            #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
            #[repr(i32)]
            #[allow(clippy::enum_variant_names)]
            pub enum #id { #(#variants)* }
            #aliases
            impl #xdr::XdrEncode for #id {
                fn encode(&self, w: &mut #xdr::XdrWriter<'_>) { w.i32(*self as i32); }
            }
            impl #xdr::XdrDecode for #id {
                fn decode(r: &mut #xdr::XdrReader<'_>) -> ::core::result::Result<Self, #de> {
                    let at = r.clone();
                    match r.enumeration()? {
                        #(#arms)*
                        _ => Err(at.error(#dek::Invalid(#msg))),
                    }
                }
            }
        })
    }

    pub(super) fn fields(
        &self,
        owner: &str,
        fields: &[Field],
    ) -> GResult<(Vec<TokenStream>, Vec<TokenStream>, Vec<TokenStream>)> {
        let mut seen = HashSet::new();
        let (mut decls, mut encs, mut decs) = (Vec::new(), Vec::new(), Vec::new());
        for f in fields {
            let name = snake(&f.name);
            if !seen.insert(name.clone()) {
                return fault(
                    f.at,
                    format!("two fields of `{owner}` become the Rust field `{name}`: rename one"),
                );
            }
            let id = ident(&name);
            let ty = self.rust_type(f)?;
            let doc = Self::doc(&f.doc, format!("`{}`.", f.name));
            decls.push(quote!(#doc pub #id: #ty,));
            encs.push(self.enc_field(f, &Arg::Place(quote!(self.#id)))?);
            let d = self.dec_field(f, &format!("{owner}.{}", f.name))?;
            decs.push(quote!(#id: #d?,));
        }
        Ok((decls, encs, decs))
    }

    pub(super) fn structure(&mut self, def: &Def, fields: &[Field]) -> GResult<TokenStream> {
        let xdr = &self.xdr;
        let (de, dek) = (&self.de, &self.dek);
        let id = ident(&upper_camel(&def.name));
        let derives = self.derives(&def.name);
        let list = matches!(self.kinds.get(&def.name), Some((Kind::List, _)));
        let own = if list {
            &fields[..fields.len() - 1]
        } else {
            fields
        };
        let (decls, encs, decs) = self.fields(&def.name, own)?;
        if list {
            let next = &fields[fields.len() - 1].name;
            let doc = Self::doc(
                &def.doc,
                format!("`struct {}` from the `.x` file.", def.name),
            );
            let note = format!(
                " A linked list on the wire (`{next}` points to the next node): held as a `Vec<{}>`, decoded by a loop of at most {} nodes.",
                upper_camel(&def.name),
                self.opts.max_list_len
            );
            let cap = Literal::u32_unsuffixed(self.opts.max_list_len);
            let cap_usize = Literal::usize_unsuffixed(self.opts.max_list_len as usize);
            let over = Literal::u32_unsuffixed(self.opts.max_list_len.saturating_add(1));
            return Ok(quote! {
                #doc
                #[doc = ""]
                #[doc = #note]
                #derives
                pub struct #id { #(#decls)* }
                impl #id {
                    /// Encodes `nodes` as the linked list they are on the wire
                    /// (over the cap, one the peer's decoder would refuse).
                    pub fn xdr_encode_list(nodes: &[#id], w: &mut #xdr::XdrWriter<'_>) {
                        w.bound(nodes.len(), #cap);
                        for node in nodes {
                            w.bool(true);
                            node.xdr_encode_node(w);
                        }
                        w.bool(false);
                    }
                    /// Decodes a linked list without recursion, refusing more
                    /// than the generator's `max_list_len` nodes.
                    pub fn xdr_decode_list(r: &mut #xdr::XdrReader<'_>) -> ::core::result::Result<::std::vec::Vec<#id>, #de> {
                        let mut nodes = ::std::vec::Vec::new();
                        loop {
                            let at = r.clone();
                            if !r.bool()? {
                                return Ok(nodes);
                            }
                            if nodes.len() >= #cap_usize {
                                return Err(at.error(#dek::LengthOverBound { len: #over, max: #cap }));
                            }
                            nodes.push(#id::xdr_decode_node(r)?);
                        }
                    }
                    fn xdr_encode_node(&self, w: &mut #xdr::XdrWriter<'_>) { #(#encs)* }
                    fn xdr_decode_node(r: &mut #xdr::XdrReader<'_>) -> ::core::result::Result<Self, #de> {
                        Ok(#id { #(#decs)* })
                    }
                }
            });
        }
        let doc = Self::doc(
            &def.doc,
            format!("`struct {}` from the `.x` file.", def.name),
        );
        Ok(quote! {
            #doc
            #derives
            pub struct #id { #(#decls)* }
            impl #xdr::XdrEncode for #id {
                fn encode(&self, w: &mut #xdr::XdrWriter<'_>) { #(#encs)* }
            }
            impl #xdr::XdrDecode for #id {
                fn decode(r: &mut #xdr::XdrReader<'_>) -> ::core::result::Result<Self, #de> {
                    Ok(#id { #(#decs)* })
                }
            }
        })
    }

    pub(super) fn typedef(&mut self, def: &Def, f: &Field) -> GResult<TokenStream> {
        let xdr = &self.xdr;
        let de = &self.de;
        let id = ident(&upper_camel(&def.name));
        let derives = self.derives(&def.name);
        let ty = self.rust_type(f)?;
        let enc = self.enc_field(f, &Arg::Place(quote!(self.0)))?;
        let dec = self.dec_field(f, &def.name)?;
        let doc = Self::doc(
            &def.doc,
            format!("`typedef {}` from the `.x` file.", def.name),
        );
        Ok(quote! {
            #doc
            #derives
            pub struct #id(pub #ty);
            impl #xdr::XdrEncode for #id {
                fn encode(&self, w: &mut #xdr::XdrWriter<'_>) { #enc }
            }
            impl #xdr::XdrDecode for #id {
                fn decode(r: &mut #xdr::XdrReader<'_>) -> ::core::result::Result<Self, #de> {
                    Ok(#id(#dec?))
                }
            }
        })
    }
}
