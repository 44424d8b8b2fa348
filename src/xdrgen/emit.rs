//! Rust from the model: resolves constants, checks names, types and
//! recursion, and maps each declaration to its Rust type and to the
//! statements that encode and decode it; [`items`] emits the items, each
//! kind from its own module.

use std::collections::{BTreeMap, HashMap, HashSet};

use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::quote;

use super::Options;
use super::lex::{Define, Fault};
use super::names::upper_camel;
use super::parse::{Decl, Def, DefKind, Field, FieldKind, Shape, Type, Value};

mod clients;
mod items;
mod programs;
mod servers;
mod types;
mod unions;

type GResult<T> = Result<T, Fault>;

fn fault<T>(at: usize, message: impl Into<String>) -> GResult<T> {
    Err(Fault {
        at,
        message: message.into(),
    })
}

fn ident(s: &str) -> Ident {
    match s.strip_prefix("r#") {
        Some(raw) => Ident::new_raw(raw, Span::call_site()),
        None => Ident::new(s, Span::call_site()),
    }
}

/// The largest fixed array or fixed opaque length accepted (`[N]` becomes a
/// Rust array held inline, so a huge `N` would not fit on a stack).
const MAX_FIXED: i128 = 1 << 16;

/// What a type name refers to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Enum,
    Struct,
    List,
    Union,
    Typedef,
}

/// The base of a union's discriminant.
#[derive(Clone, PartialEq, Eq)]
enum Disc {
    Int,
    Unsigned,
    Bool,
    Enum(String),
}

/// An expression to encode: a place of type `T`, or a reference `&T`.
#[derive(Clone)]
enum Arg {
    Place(TokenStream),
    Ref(TokenStream),
}

impl Arg {
    fn value(&self) -> TokenStream {
        match self {
            Arg::Place(p) => p.clone(),
            Arg::Ref(r) => quote!(*#r),
        }
    }
    fn reference(&self) -> TokenStream {
        match self {
            Arg::Place(p) => quote!(&#p),
            Arg::Ref(r) => r.clone(),
        }
    }
    fn method(&self) -> TokenStream {
        match self {
            Arg::Place(p) | Arg::Ref(p) => p.clone(),
        }
    }
}

pub(crate) struct Gen<'a> {
    defs: &'a [Def],
    opts: &'a Options,
    values: HashMap<String, i128>,
    defines: Vec<Define>,
    kinds: HashMap<String, (Kind, &'a Def)>,
    /// Rust names already taken, with the XDR name that took them.
    taken_types: HashMap<String, String>,
    taken_values: HashMap<String, String>,
    krate: TokenStream,
    xdr: TokenStream,
    de: TokenStream,
    dek: TokenStream,
}

impl<'a> Gen<'a> {
    pub fn new(defs: &'a [Def], defines: &[Define], opts: &'a Options) -> GResult<Gen<'a>> {
        let krate: TokenStream = opts.crate_path.parse().map_err(|_| Fault {
            at: 0,
            message: format!("invalid crate path `{}`", opts.crate_path),
        })?;
        let mut g = Gen {
            defs,
            opts,
            values: HashMap::new(),
            defines: defines.to_vec(),
            kinds: HashMap::new(),
            taken_types: HashMap::new(),
            taken_values: HashMap::new(),
            xdr: quote!(#krate::proto::xdr),
            de: quote!(#krate::proto::DecodeError),
            dek: quote!(#krate::proto::DecodeErrorKind),
            krate,
        };
        // rpcgen knows TRUE and FALSE (bool case labels).
        g.values.insert("TRUE".into(), 1);
        g.values.insert("FALSE".into(), 0);
        for d in defines {
            let v = super::lex::lex(&d.value).ok().and_then(|t| {
                match (t.first().map(|t| &t.tok), t.len()) {
                    (Some(super::lex::Tok::Number(n)), 2) => Some(*n),
                    _ => None,
                }
            });
            match v {
                Some(v) => g.value_name(&d.name, d.at, v)?,
                None => {
                    return fault(
                        d.at,
                        format!(
                            "expected a number as the value of #define {} (only numeric #defines are supported)",
                            d.name
                        ),
                    );
                }
            }
        }
        for def in defs {
            let kind = match &def.kind {
                DefKind::Const(v) => {
                    let n = g.resolve(v)?;
                    g.value_name(&def.name, def.at, n)?;
                    continue;
                }
                DefKind::Program(..) | DefKind::StrConst(_) => continue,
                DefKind::Enum(values) => {
                    let mut next = 0i128;
                    for v in values {
                        let n = match &v.value {
                            Some(val) => g.resolve(val)?,
                            None => next,
                        };
                        g.value_name(&v.name, v.at, n)?;
                        next = n + 1;
                    }
                    Kind::Enum
                }
                DefKind::Struct(_) => Kind::Struct,
                DefKind::Union(_) => Kind::Union,
                DefKind::Typedef(_) => Kind::Typedef,
            };
            if g.kinds.insert(def.name.clone(), (kind, def)).is_some() {
                return fault(def.at, format!("`{}` is defined twice", def.name));
            }
            g.take_type(&upper_camel(&def.name), &def.name, def.at)?;
        }
        // Linked lists: a struct whose last field points to itself.
        let lists: Vec<String> = defs
            .iter()
            .filter_map(|d| match &d.kind {
                DefKind::Struct(fields) if g.is_self_pointer(&d.name, fields.last()?) => {
                    Some(d.name.clone())
                }
                _ => None,
            })
            .collect();
        for l in lists {
            if let Some(k) = g.kinds.get_mut(&l) {
                k.0 = Kind::List;
            }
        }
        Ok(g)
    }

    fn take_type(&mut self, rust: &str, xdr: &str, at: usize) -> GResult<()> {
        if ["Ok", "Err", "Some", "None"].contains(&rust) {
            return fault(
                at,
                format!(
                    "`{xdr}` would become `{rust}`, which the generated code uses from Rust's prelude: rename it"
                ),
            );
        }
        if let Some(prev) = self.taken_types.insert(rust.to_owned(), xdr.to_owned()) {
            return fault(
                at,
                format!("`{xdr}` and `{prev}` both become the Rust type `{rust}`: rename one"),
            );
        }
        Ok(())
    }

    fn take_value(&mut self, rust: &str, xdr: &str, at: usize) -> GResult<()> {
        if let Some(prev) = self.taken_values.insert(rust.to_owned(), xdr.to_owned()) {
            return fault(
                at,
                format!("`{xdr}` and `{prev}` both become the Rust constant `{rust}`: rename one"),
            );
        }
        Ok(())
    }

    fn value_name(&mut self, name: &str, at: usize, v: i128) -> GResult<()> {
        if self.values.insert(name.to_owned(), v).is_some() {
            return fault(at, format!("`{name}` is defined twice"));
        }
        Ok(())
    }

    fn resolve(&self, v: &Value) -> GResult<i128> {
        match v {
            Value::Number(n) => Ok(*n),
            Value::Name(n, at) => match self.values.get(n) {
                Some(v) => Ok(*v),
                None => fault(
                    *at,
                    format!(
                        "unknown constant `{n}`: expected a number or a constant defined before"
                    ),
                ),
            },
        }
    }

    fn bound(&self, v: &Option<Value>, at: usize) -> GResult<u32> {
        match v {
            None => Ok(u32::MAX),
            Some(v) => {
                let n = self.resolve(v)?;
                u32::try_from(n).or_else(|_| {
                    fault(
                        at,
                        format!("bound {n} is out of range: expected 0 to 4294967295"),
                    )
                })
            }
        }
    }

    fn fixed_len(&self, v: &Value, at: usize) -> GResult<usize> {
        let n = self.resolve(v)?;
        if !(0..=MAX_FIXED).contains(&n) {
            return fault(
                at,
                format!(
                    "fixed length {n} is out of range: expected 0 to {MAX_FIXED} (use a variable-length `<N>` for more)"
                ),
            );
        }
        Ok(n as usize)
    }

    /// Is `field` an optional pointer to the struct `name`, directly
    /// (`name *next`) or through a typedef (`typedef name *list; list next`)?
    fn is_self_pointer(&self, name: &str, field: &Field) -> bool {
        match &field.kind {
            FieldKind::Typed(Type::Named(t, _), Shape::Optional) => t == name,
            FieldKind::Typed(Type::Named(t, _), Shape::Plain) => {
                matches!(self.kinds.get(t), Some((Kind::Typedef, d)) if matches!(&d.kind,
                    DefKind::Typedef(f) if matches!(&f.kind, FieldKind::Typed(Type::Named(s, _), Shape::Optional) if s == name)))
            }
            _ => false,
        }
    }

    fn kind_of(&self, name: &str, at: usize) -> GResult<Kind> {
        match self.kinds.get(name) {
            Some((k, _)) => Ok(*k),
            None if self.values.contains_key(name) => {
                fault(at, format!("`{name}` is a constant: expected a type"))
            }
            None => fault(
                at,
                format!("unknown type `{name}`: expected a type defined in this file"),
            ),
        }
    }

    /// The Rust type of a base type; a linked list struct is refused unless
    /// `list_ok` (the caller handles `L *`).
    fn base(&self, ty: &Type) -> GResult<TokenStream> {
        Ok(match ty {
            Type::Int => quote!(i32),
            Type::Unsigned => quote!(u32),
            Type::Hyper => quote!(i64),
            Type::UnsignedHyper => quote!(u64),
            Type::Bool => quote!(bool),
            Type::Float => quote!(f32),
            Type::Double => quote!(f64),
            Type::Named(n, at) => {
                if self.kind_of(n, *at)? == Kind::List {
                    return fault(
                        *at,
                        format!(
                            "`{n}` is a linked list (its last field points to itself): expected `{n} *` here"
                        ),
                    );
                }
                let id = ident(&upper_camel(n));
                quote!(#id)
            }
        })
    }

    fn is_list_pointer(&self, kind: &FieldKind) -> bool {
        matches!(kind, FieldKind::Typed(Type::Named(n, _), Shape::Optional)
            if matches!(self.kinds.get(n), Some((Kind::List, _))))
    }

    fn rust_type(&self, f: &Field) -> GResult<TokenStream> {
        let xdr = &self.xdr;
        let krate = &self.krate;
        Ok(match &f.kind {
            FieldKind::Typed(Type::Named(n, _), Shape::Optional)
                if self.is_list_pointer(&f.kind) =>
            {
                let id = ident(&upper_camel(n));
                quote!(::std::vec::Vec<#id>)
            }
            FieldKind::Typed(ty, shape) => {
                let b = self.base(ty)?;
                match shape {
                    Shape::Plain => b,
                    Shape::Fixed(n) => {
                        let n = Literal::usize_unsuffixed(self.fixed_len(n, f.at)?);
                        quote!([#b; #n])
                    }
                    Shape::Variable(m) => {
                        self.bound(m, f.at)?;
                        quote!(::std::vec::Vec<#b>)
                    }
                    Shape::Optional => quote!(::core::option::Option<#b>),
                }
            }
            FieldKind::OpaqueFixed(n) => {
                let n = Literal::usize_unsuffixed(self.fixed_len(n, f.at)?);
                quote!([u8; #n])
            }
            FieldKind::Opaque(m) => {
                self.bound(m, f.at)?;
                quote!(#krate::bytes::Bytes)
            }
            FieldKind::String(m) => {
                self.bound(m, f.at)?;
                quote!(#xdr::XdrString)
            }
        })
    }

    /// The derives of the type named `name`: `Eq` and `Hash` too, unless
    /// it holds a `float` or `double` (whose NaN is not equal to itself),
    /// at any depth.
    fn derives(&self, name: &str) -> TokenStream {
        if self.holds_float(name, &mut HashSet::new()) {
            quote!(#[derive(Clone, Debug, PartialEq)])
        } else {
            quote!(#[derive(Clone, Debug, PartialEq, Eq, Hash)])
        }
    }

    fn holds_float(&self, name: &str, seen: &mut HashSet<String>) -> bool {
        if !seen.insert(name.to_owned()) {
            return false;
        }
        let Some((_, def)) = self.kinds.get(name) else {
            return false;
        };
        let decl = |d: &'a Decl| match d {
            Decl::Field(f) => Some(f),
            Decl::Void => None,
        };
        let fields: Vec<&Field> = match &def.kind {
            DefKind::Struct(fields) => fields.iter().collect(),
            DefKind::Typedef(field) => vec![field],
            DefKind::Union(u) => {
                let arms = u.arms.iter().filter_map(|arm| decl(&arm.decl));
                arms.chain(u.default.as_ref().and_then(decl)).collect()
            }
            _ => Vec::new(),
        };
        fields.iter().any(|f| match &f.kind {
            FieldKind::Typed(Type::Float | Type::Double, _) => true,
            FieldKind::Typed(Type::Named(n, _), _) => self.holds_float(n, seen),
            _ => false,
        })
    }

    /// Statements that encode one base value.
    fn enc_base(&self, ty: &Type, a: &Arg) -> TokenStream {
        let v = a.value();
        match ty {
            Type::Int => quote!(w.i32(#v);),
            Type::Unsigned => quote!(w.u32(#v);),
            Type::Hyper => quote!(w.i64(#v);),
            Type::UnsignedHyper => quote!(w.u64(#v);),
            Type::Bool => quote!(w.bool(#v);),
            Type::Float => {
                let m = a.method();
                quote!(w.u32(#m.to_bits());)
            }
            Type::Double => {
                let m = a.method();
                quote!(w.u64(#m.to_bits());)
            }
            Type::Named(..) => {
                let xdr = &self.xdr;
                let r = a.reference();
                quote!(#xdr::XdrEncode::encode(#r, w);)
            }
        }
    }

    /// A `Result` expression that decodes one base value from `r`.
    fn dec_base(&self, ty: &Type) -> TokenStream {
        let xdr = &self.xdr;
        match ty {
            Type::Int => quote!(r.i32()),
            Type::Unsigned => quote!(r.u32()),
            Type::Hyper => quote!(r.i64()),
            Type::UnsignedHyper => quote!(r.u64()),
            Type::Bool => quote!(r.bool()),
            Type::Float => quote!(r.u32().map(f32::from_bits)),
            Type::Double => quote!(r.u64().map(f64::from_bits)),
            Type::Named(n, _) => {
                let id = ident(&upper_camel(n));
                quote!(<#id as #xdr::XdrDecode>::decode(r))
            }
        }
    }

    /// A callable for `r.array`/`r.optional`/`r.fixed_array`.
    fn dec_fn(&self, ty: &Type) -> TokenStream {
        let xdr = &self.xdr;
        match ty {
            Type::Named(n, _) => {
                let id = ident(&upper_camel(n));
                quote!(<#id as #xdr::XdrDecode>::decode)
            }
            _ => {
                let d = self.dec_base(ty);
                quote!(|r| #d)
            }
        }
    }

    fn enc_field(&self, f: &Field, a: &Arg) -> GResult<TokenStream> {
        let m = a.method();
        Ok(match &f.kind {
            FieldKind::Typed(Type::Named(n, _), Shape::Optional)
                if self.is_list_pointer(&f.kind) =>
            {
                let id = ident(&upper_camel(n));
                let r = a.reference();
                quote!(#id::xdr_encode_list(#r, w);)
            }
            FieldKind::Typed(ty, shape) => match shape {
                Shape::Plain => self.enc_base(ty, a),
                Shape::Fixed(_) => {
                    let e = self.enc_base(ty, &Arg::Ref(quote!(x)));
                    quote!(for x in #m.iter() { #e })
                }
                Shape::Variable(max) => {
                    let e = self.enc_base(ty, &Arg::Ref(quote!(x)));
                    let check = self.enc_bound(&m, max, f.at)?;
                    quote!(#check w.u32(#m.len() as u32); for x in #m.iter() { #e })
                }
                Shape::Optional => {
                    let e = self.enc_base(ty, &Arg::Ref(quote!(x)));
                    let r = a.reference();
                    quote!(match #r { Some(x) => { w.bool(true); #e } None => w.bool(false), })
                }
            },
            FieldKind::OpaqueFixed(_) => quote!(w.opaque_fixed(&#m[..]);),
            FieldKind::Opaque(max) => {
                let check = self.enc_bound(&m, max, f.at)?;
                quote!(#check w.opaque(&#m[..]);)
            }
            FieldKind::String(max) => {
                let r = a.reference();
                let check = self.enc_bound(&m, max, f.at)?;
                quote!(#check w.string_bytes(#r);)
            }
        })
    }

    /// `w.bound(..)` for a variable-length item `m` with bound `max`;
    /// nothing for `<>`, which any length a `u32` counts fits.
    fn enc_bound(&self, m: &TokenStream, max: &Option<Value>, at: usize) -> GResult<TokenStream> {
        let max = self.bound(max, at)?;
        Ok(if max == u32::MAX {
            quote!()
        } else {
            let max = Literal::u32_unsuffixed(max);
            quote!(w.bound(#m.len(), #max);)
        })
    }

    /// A `Result` expression that decodes a field.
    fn dec_field(&self, f: &Field, what: &str) -> GResult<TokenStream> {
        let dek = &self.dek;
        Ok(match &f.kind {
            FieldKind::Typed(Type::Named(n, _), Shape::Optional)
                if self.is_list_pointer(&f.kind) =>
            {
                let id = ident(&upper_camel(n));
                quote!(#id::xdr_decode_list(r))
            }
            FieldKind::Typed(ty, shape) => match shape {
                Shape::Plain => self.dec_base(ty),
                Shape::Fixed(n) => {
                    let len = Literal::usize_unsuffixed(self.fixed_len(n, f.at)?);
                    let call = self.dec_fn(ty);
                    let msg = format!("{what}: wrong fixed array length");
                    quote!(r.fixed_array(#len, #call).and_then(|v| {
                        <[_; #len]>::try_from(v).map_err(|_| r.error(#dek::Invalid(#msg)))
                    }))
                }
                Shape::Variable(m) => {
                    let max = Literal::u32_unsuffixed(self.bound(m, f.at)?);
                    let call = self.dec_fn(ty);
                    quote!(r.array(#max, #call))
                }
                Shape::Optional => {
                    let call = self.dec_fn(ty);
                    quote!(r.optional(#call))
                }
            },
            FieldKind::OpaqueFixed(n) => {
                let len = Literal::usize_unsuffixed(self.fixed_len(n, f.at)?);
                quote!(r.opaque_fixed(#len).map(|s| {
                    let mut a = [0u8; #len];
                    a.copy_from_slice(s);
                    a
                }))
            }
            FieldKind::Opaque(m) => {
                let max = Literal::u32_unsuffixed(self.bound(m, f.at)?);
                quote!(r.opaque_bytes(#max))
            }
            FieldKind::String(m) => {
                let max = Literal::u32_unsuffixed(self.bound(m, f.at)?);
                quote!(r.string_bytes(#max))
            }
        })
    }

    /// Every named type a declaration mentions (for the recursion check),
    /// except a pointer to a linked list, which is decoded by a loop.
    fn deps(&self, f: &Field) -> Vec<(String, usize)> {
        match &f.kind {
            FieldKind::Typed(Type::Named(n, at), _) if !self.is_list_pointer(&f.kind) => {
                vec![(n.clone(), *at)]
            }
            _ => Vec::new(),
        }
    }

    fn check_recursion(&self) -> GResult<()> {
        let mut edges: BTreeMap<&str, Vec<(String, usize)>> = BTreeMap::new();
        for def in self.defs {
            let fields: Vec<&Field> = match &def.kind {
                DefKind::Struct(fs) => {
                    let list = matches!(self.kinds.get(&def.name), Some((Kind::List, _)));
                    fs.iter().take(fs.len() - usize::from(list)).collect()
                }
                DefKind::Typedef(f) => vec![f],
                DefKind::Union(u) => u
                    .arms
                    .iter()
                    .map(|a| &a.decl)
                    .chain(u.default.iter())
                    .filter_map(|d| match d {
                        Decl::Field(f) => Some(f),
                        Decl::Void => None,
                    })
                    .collect(),
                _ => continue,
            };
            edges.insert(
                &def.name,
                fields.iter().flat_map(|f| self.deps(f)).collect(),
            );
        }
        // Depth-first search for a cycle; 0 new, 1 on the path, 2 done.
        let mut state: HashMap<&str, u8> = HashMap::new();
        fn visit<'b>(
            n: &'b str,
            edges: &'b BTreeMap<&str, Vec<(String, usize)>>,
            state: &mut HashMap<&'b str, u8>,
        ) -> Option<(String, usize)> {
            state.insert(n, 1);
            for (m, at) in edges.get(n).into_iter().flatten() {
                match state.get(m.as_str()).copied().unwrap_or(0) {
                    1 => return Some((m.clone(), *at)),
                    0 if edges.contains_key(m.as_str()) => {
                        if let Some(c) = visit(m, edges, state) {
                            return Some(c);
                        }
                    }
                    _ => {}
                }
            }
            state.insert(n, 2);
            None
        }
        for n in edges.keys() {
            if state.get(n).copied().unwrap_or(0) == 0
                && let Some((m, at)) = visit(n, &edges, &mut state)
            {
                return fault(
                    at,
                    format!(
                        "recursive type `{m}`: only a linked list is supported (a struct whose last field is an optional pointer to itself, `{m} *next`)"
                    ),
                );
            }
        }
        Ok(())
    }
}
