//! Unions: an enum per union, with the discriminant's encoding and each
//! arm's.

use std::collections::{HashMap, HashSet};

use proc_macro2::{Literal, TokenStream};
use quote::quote;

use super::super::names::upper_camel;
use super::super::parse::{Arm, Decl, Def, DefKind, Field, FieldKind, Shape, Type, Union, Value};
use super::types::variant_name;
use super::{Arg, Disc, GResult, Gen, Kind, fault, ident};

impl Gen<'_> {
    /// The base of a discriminant type, through typedefs.
    pub(super) fn disc(&self, ty: &Type) -> GResult<Disc> {
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

    pub(super) fn union(&mut self, def: &Def, u: &Union) -> GResult<TokenStream> {
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
}
