//! Rust from the model: checks names and types, then emits items with
//! `quote` and formats them with `prettyplease`.

use std::collections::{BTreeMap, HashMap, HashSet};

use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::quote;

use super::Options;
use super::lex::{Define, Fault};
use super::names::{screaming, snake, upper_camel};
use super::parse::{Arm, Decl, Def, DefKind, Field, FieldKind, Shape, Type, Union, Value};

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
/// without the prefix up to an `_` that all of them share (`KV_GET` and
/// `KV_PUT` become `get` and `put`), unless that leaves a clash.
fn method_names(procs: &[&str]) -> HashMap<String, String> {
    let full = |p: &&str| (p.to_string(), snake(p));
    let mut prefix = procs.first().map_or("", |p| match p.find('_') {
        Some(i) => &p[..=i],
        None => "",
    });
    if procs.len() < 2
        || procs
            .iter()
            .any(|p| !p.starts_with(prefix) || p.len() == prefix.len())
    {
        prefix = "";
    }
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
                Shape::Variable(_) => {
                    let e = self.enc_base(ty, &Arg::Ref(quote!(x)));
                    quote!(w.u32(#m.len() as u32); for x in #m.iter() { #e })
                }
                Shape::Optional => {
                    let e = self.enc_base(ty, &Arg::Ref(quote!(x)));
                    let r = a.reference();
                    quote!(match #r { Some(x) => { w.bool(true); #e } None => w.bool(false), })
                }
            },
            FieldKind::OpaqueFixed(_) => quote!(w.opaque_fixed(&#m[..]);),
            FieldKind::Opaque(_) => quote!(w.opaque(&#m[..]);),
            FieldKind::String(_) => {
                let r = a.reference();
                quote!(w.string_bytes(#r);)
            }
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

    fn enumeration(
        &mut self,
        def: &Def,
        values: &[super::parse::EnumValue],
    ) -> GResult<TokenStream> {
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
                #[derive(Clone, Debug, PartialEq)]
                pub struct #id { #(#decls)* }
                impl #id {
                    /// Encodes `nodes` as the linked list they are on the wire.
                    pub fn xdr_encode_list(nodes: &[#id], w: &mut #xdr::XdrWriter<'_>) {
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
            #[derive(Clone, Debug, PartialEq)]
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
        let ty = self.rust_type(f)?;
        let enc = self.enc_field(f, &Arg::Place(quote!(self.0)))?;
        let dec = self.dec_field(f, &def.name)?;
        let doc = Self::doc(
            &def.doc,
            format!("`typedef {}` from the `.x` file.", def.name),
        );
        Ok(quote! {
            #doc
            #[derive(Clone, Debug, PartialEq)]
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
                    /// `default: void`, with the discriminant.
                    Default(#disc_ty),
                ));
                encs.push(quote!(#id::Default(d) => { #enc_d }));
                decs.push(quote!(d => #id::Default(d),));
            }
            (Some(Decl::Field(f)), false) => {
                let ty = self.rust_type(f)?;
                let doc = Self::doc(
                    &f.doc,
                    format!("`default: {}`, with the discriminant.", f.name),
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
            #[derive(Clone, Debug, PartialEq)]
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
                });
            }
            let client = format!("{}Client", upper_camel(&v.name));
            self.take_type(&client, &format!("{} (its client)", v.name), v.at)?;
            let cid = ident(&client);
            let cdoc = format!(
                " A typed client of version `{}` ({n}) of program `{}`: one method per procedure.",
                v.name, def.name
            );
            items.push(quote! {
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
            });
        }
        Ok(quote!(#(#items)*))
    }
}
