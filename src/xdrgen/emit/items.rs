//! Items: constants, enums, structs, typedefs, unions and programs, each
//! with its `XdrEncode`/`XdrDecode` impls, and the typed client per version.

use std::collections::{HashMap, HashSet};

use proc_macro2::{Ident, Literal, TokenStream};
use quote::quote;

use super::super::names::{screaming, snake, upper_camel};
use super::super::parse::{
    Arm, Decl, Def, DefKind, EnumValue, Field, FieldKind, Shape, Type, Union, Value,
};
use super::{Arg, Disc, GResult, Gen, Kind, fault, ident};

/// A variant's name: the value's name in UpperCamel without the enum's
/// name in front (`STATUS_OK` of `status` becomes `Ok`), as prost does.
fn variant_name(enum_name: &str, value: &str) -> String {
    let e = upper_camel(enum_name);
    let v = upper_camel(value);
    match v.strip_prefix(e.as_str()) {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_uppercase()) => rest.to_owned(),
        _ => v,
    }
}

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
    fn doc(doc: &Option<String>, fallback: String) -> TokenStream {
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

    fn constant(&mut self, def: &Def) -> GResult<TokenStream> {
        let v = self.values[&def.name];
        let name = screaming(&def.name);
        self.take_value(&name, &def.name, def.at)?;
        let doc = Self::doc(
            &def.doc,
            format!("`const {}` from the `.x` file.", def.name),
        );
        self.constant_item(&name, v, doc, def.at)
    }

    fn constant_item(
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

    fn enumeration(&mut self, def: &Def, values: &[EnumValue]) -> GResult<TokenStream> {
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

    fn fields(
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

    fn structure(&mut self, def: &Def, fields: &[Field]) -> GResult<TokenStream> {
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

    fn typedef(&mut self, def: &Def, f: &Field) -> GResult<TokenStream> {
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

    /// The base of a discriminant type, through typedefs.
    fn disc(&self, ty: &Type) -> GResult<Disc> {
        match ty {
            Type::Int => Ok(Disc::Int),
            Type::Unsigned => Ok(Disc::Unsigned),
            Type::Bool => Ok(Disc::Bool),
            Type::Named(n, at) => match self.kinds.get(n) {
                Some((Kind::Enum, _)) => Ok(Disc::Enum(n.clone())),
                Some((Kind::Typedef, d)) => match &d.kind {
                    DefKind::Typedef(Field {
                        kind: FieldKind::Typed(t, Shape::Plain),
                        ..
                    }) => self.disc(t),
                    _ => fault(
                        *at,
                        format!(
                            "`{n}` cannot be a discriminant: expected int, unsigned, bool or an enum"
                        ),
                    ),
                },
                _ => {
                    self.kind_of(n, *at)?;
                    fault(
                        *at,
                        format!(
                            "`{n}` cannot be a discriminant: expected int, unsigned, bool or an enum"
                        ),
                    )
                }
            },
            _ => fault(
                0,
                "a union's discriminant must be int, unsigned, bool or an enum",
            ),
        }
    }

    fn union(&mut self, def: &Def, u: &Union) -> GResult<TokenStream> {
        let xdr = &self.xdr;
        let (de, dek) = (&self.de, &self.dek);
        let id = ident(&upper_camel(&def.name));
        let derives = self.derives(&def.name);
        let disc = self
            .disc(&u.disc)
            .or_else(|e| fault(if e.at == 0 { def.at } else { e.at }, e.message))?;
        let (disc_ty, dec_disc) = match &disc {
            Disc::Int => (quote!(i32), quote!(r.i32()?)),
            Disc::Unsigned => (quote!(u32), quote!(r.u32()?)),
            Disc::Bool => (quote!(bool), quote!(r.bool()?)),
            Disc::Enum(e) => {
                let e = ident(&upper_camel(e));
                (quote!(#e), quote!(<#e as #xdr::XdrDecode>::decode(r)?))
            }
        };
        let enum_values: Vec<(String, i128)> = match &disc {
            Disc::Enum(e) => match &self.kinds[e].1.kind {
                DefKind::Enum(vs) => vs
                    .iter()
                    .map(|v| (v.name.clone(), self.values[&v.name]))
                    .collect(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        let mut variants = Vec::new();
        let mut encs = Vec::new();
        let mut decs = Vec::new();
        let mut seen_names = HashSet::new();
        let mut seen_values: HashMap<i128, String> = HashMap::new();
        for Arm { cases, decl } in &u.arms {
            for (case, at) in cases {
                let n = self.resolve(case)?;
                let label = match case {
                    Value::Name(s, _) => s.clone(),
                    Value::Number(n) => format!("{n}"),
                };
                if let Some(prev) = seen_values.insert(n, label.clone()) {
                    return fault(
                        *at,
                        format!(
                            "case `{label}` repeats case `{prev}` of union `{}`",
                            def.name
                        ),
                    );
                }
                let (pattern, enc_disc, vname) = match &disc {
                    Disc::Int | Disc::Unsigned => {
                        let lit = if disc == Disc::Int {
                            Literal::i32_unsuffixed(i32::try_from(n).or_else(|_| {
                                fault(*at, format!("case {n} does not fit an int discriminant"))
                            })?)
                        } else {
                            Literal::u32_unsuffixed(u32::try_from(n).or_else(|_| {
                                fault(
                                    *at,
                                    format!("case {n} does not fit an unsigned discriminant"),
                                )
                            })?)
                        };
                        let vname = match case {
                            Value::Name(s, _) => upper_camel(s),
                            Value::Number(n) if *n < 0 => format!("CaseMinus{}", -n),
                            Value::Number(n) => format!("Case{n}"),
                        };
                        let m = if disc == Disc::Int {
                            quote!(i32)
                        } else {
                            quote!(u32)
                        };
                        (quote!(#lit), quote!(w.#m(#lit);), vname)
                    }
                    Disc::Bool => {
                        let b = match n {
                            0 => false,
                            1 => true,
                            _ => {
                                return fault(
                                    *at,
                                    format!(
                                        "case {n} for a bool discriminant: expected TRUE (1) or FALSE (0)"
                                    ),
                                );
                            }
                        };
                        (
                            quote!(#b),
                            quote!(w.bool(#b);),
                            if b { "True".into() } else { "False".into() },
                        )
                    }
                    Disc::Enum(e) => {
                        let Some((vname, _)) = enum_values.iter().find(|(_, v)| *v == n) else {
                            return fault(
                                *at,
                                format!("case `{label}` is not a value of enum `{e}`"),
                            );
                        };
                        let eid = ident(&upper_camel(e));
                        let vid = ident(&variant_name(e, vname));
                        (
                            quote!(#eid::#vid),
                            quote!(w.i32(#eid::#vid as i32);),
                            variant_name(e, vname),
                        )
                    }
                };
                if !seen_names.insert(vname.clone()) || vname == "Default" {
                    return fault(
                        *at,
                        format!(
                            "case `{label}` becomes the Rust variant `{vname}`, which is taken in union `{}`",
                            def.name
                        ),
                    );
                }
                let vid = ident(&vname);
                match decl {
                    Decl::Void => {
                        let doc = format!(" `case {label}: void`.");
                        variants.push(quote!(#[doc = #doc] #vid,));
                        encs.push(quote!(#id::#vid => { #enc_disc }));
                        decs.push(quote!(#pattern => #id::#vid,));
                    }
                    Decl::Field(f) => {
                        let ty = self.rust_type(f)?;
                        let doc = Self::doc(&f.doc, format!("`case {label}: {}`.", f.name));
                        variants.push(quote!(#doc #vid(#ty),));
                        let e = self.enc_field(f, &Arg::Ref(quote!(v)))?;
                        encs.push(quote!(#id::#vid(v) => { #enc_disc #e }));
                        let d = self.dec_field(f, &format!("{}.{}", def.name, f.name))?;
                        decs.push(quote!(#pattern => #id::#vid(#d?),));
                    }
                }
            }
        }
        let covered = match &disc {
            Disc::Bool => seen_values.len() == 2,
            Disc::Enum(_) => enum_values.iter().all(|(_, v)| seen_values.contains_key(v)),
            _ => false,
        };
        let enc_d = match &disc {
            Disc::Int => quote!(w.i32(*d);),
            Disc::Unsigned => quote!(w.u32(*d);),
            Disc::Bool => quote!(w.bool(*d);),
            Disc::Enum(_) => quote!(#xdr::XdrEncode::encode(d, w);),
        };
        match (&u.default, covered) {
            (_, true) => {}
            (None, false) => {
                let msg = format!("no arm of union {} for this discriminant", def.name);
                decs.push(quote!(_ => return Err(at.error(#dek::Invalid(#msg))),));
            }
            (Some(Decl::Void), false) => {
                variants.push(quote!(
                    /// `default: void`, with the discriminant: one that no case
                    /// names (a named one is read back as its case).
                    Default(#disc_ty),
                ));
                encs.push(quote!(#id::Default(d) => { #enc_d }));
                decs.push(quote!(d => #id::Default(d),));
            }
            (Some(Decl::Field(f)), false) => {
                let ty = self.rust_type(f)?;
                let doc = Self::doc(
                    &f.doc,
                    format!(
                        "`default: {}`, with the discriminant: one that no case names \
                         (a named one is read back as its case).",
                        f.name
                    ),
                );
                variants.push(quote!(#doc Default(#disc_ty, #ty),));
                let e = self.enc_field(f, &Arg::Ref(quote!(v)))?;
                encs.push(quote!(#id::Default(d, v) => { #enc_d #e }));
                let d = self.dec_field(f, &format!("{}.{}", def.name, f.name))?;
                decs.push(quote!(d => #id::Default(d, #d?),));
            }
        }
        let doc = Self::doc(
            &def.doc,
            format!(
                "`union {}` from the `.x` file, one variant per case.",
                def.name
            ),
        );
        let uses_at = !covered && u.default.is_none();
        let at = if uses_at {
            quote!(let at = r.clone();)
        } else {
            quote!()
        };
        Ok(quote! {
            #doc
            #derives
            #[allow(clippy::enum_variant_names, clippy::large_enum_variant)]
            pub enum #id { #(#variants)* }
            impl #xdr::XdrEncode for #id {
                fn encode(&self, w: &mut #xdr::XdrWriter<'_>) {
                    match self { #(#encs)* }
                }
            }
            impl #xdr::XdrDecode for #id {
                fn decode(r: &mut #xdr::XdrReader<'_>) -> ::core::result::Result<Self, #de> {
                    #at
                    Ok(match #dec_disc { #(#decs)* })
                }
            }
        })
    }

    fn proc_type(&self, t: &Option<Type>) -> GResult<TokenStream> {
        match t {
            None => Ok(quote!(())),
            Some(Type::Float | Type::Double) => fault(
                0,
                "a float or double argument or result: expected a named type (`typedef double real;`)",
            ),
            Some(t) => self.base(t),
        }
    }

    fn program(&mut self, def: &Def) -> GResult<TokenStream> {
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
                let mdoc = Self::doc(&p.doc, format!("Calls `{}` (procedure {pn}).", p.name));
                let (param, args) = if p.arg.is_none() {
                    (quote!(), quote!(&()))
                } else {
                    (quote!(, args: &#arg), quote!(args))
                };
                methods.push(quote! {
                    #mdoc
                    ///
                    /// Cancel-safe, as `peerwire::Client::call`.
                    pub async fn #method(&self #param) -> ::core::result::Result<#res, #krate::Error> {
                        self.client.call_proc(&#pid, #args).await
                    }
                }); // NULL (procedure 0) is answered by the server itself.
                if pn == 0 {
                    continue;
                }
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
                handlers.push(quote! {
                    #hdoc
                    fn #method(&self, ctx: &#krate::CallContext #hparam)
                        -> impl ::core::future::Future<Output = ::core::result::Result<#res, #krate::ProcError>> + ::core::marker::Send;
                });
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
                arms.push(quote! {
                    #plit => {
                        #check
                        #reply
                    }
                });
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

    /// A version's typed client.
    fn client(&mut self, v: &VersionNames<'_>, methods: &[TokenStream]) -> GResult<TokenStream> {
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

    /// A version's server trait and the program that serves it.
    fn server(
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
}

/// What a version's client and server are named after.
struct VersionNames<'a> {
    version: &'a str,
    program: &'a str,
    at: usize,
    n: u32,
    prog_id: &'a Ident,
    vid: &'a Ident,
}
