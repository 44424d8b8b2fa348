//! The parser and the checks, construct by construct and error by error.

use std::path::Path;

use super::parse::{Decl, Def, DefKind, Field, FieldKind, Parser, Shape, Type, Value};
use super::{Builder, lex};

fn defs(src: &str) -> Vec<Def> {
    let pre = lex::preprocess(src).unwrap();
    Parser::new(lex::lex(&pre.text).unwrap()).file().unwrap()
}

fn rust(src: &str) -> String {
    Builder::new()
        .generate_source(Path::new("t.x"), src)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn err(src: &str) -> String {
    match Builder::new().generate_source(Path::new("t.x"), src) {
        Ok(_) => panic!("accepted:\n{src}"),
        Err(e) => e.to_string(),
    }
}

fn field(def: &Def) -> &Field {
    match &def.kind {
        DefKind::Typedef(f) => f,
        k => panic!("not a typedef: {k:?}"),
    }
}

#[test]
fn constants_in_decimal_hex_octal_and_negative() {
    let d = defs("const A = 10; const B = 0x1F; const C = -3; const D = 010; const E = A;");
    let values: Vec<&DefKind> = d.iter().map(|d| &d.kind).collect();
    assert_eq!(
        values,
        [
            &DefKind::Const(Value::Number(10)),
            &DefKind::Const(Value::Number(31)),
            &DefKind::Const(Value::Number(-3)),
            &DefKind::Const(Value::Number(8)),
            &DefKind::Const(Value::Name("A".into(), 69)),
        ]
    );
    let out = rust("const A = 10; const C = -3; const BIG = 0x100000000; const S = \"hex\";");
    assert!(out.contains("pub const A: u32 = 10;"), "{out}");
    assert!(out.contains("pub const C: i64 = -3;"), "{out}");
    assert!(out.contains("pub const BIG: i64 = 4294967296;"), "{out}");
    assert!(out.contains("pub const S: &str = \"hex\";"), "{out}");
}

#[test]
fn every_declaration_shape() {
    let d = defs(
        "typedef int a[4]; typedef int b<5>; typedef int c<>; typedef opaque d[3];
         typedef opaque e<7>; typedef string f<>; typedef point *g; typedef struct point h;",
    );
    let kinds: Vec<&FieldKind> = d.iter().map(|d| &field(d).kind).collect();
    assert_eq!(
        kinds,
        [
            &FieldKind::Typed(Type::Int, Shape::Fixed(Value::Number(4))),
            &FieldKind::Typed(Type::Int, Shape::Variable(Some(Value::Number(5)))),
            &FieldKind::Typed(Type::Int, Shape::Variable(None)),
            &FieldKind::OpaqueFixed(Value::Number(3)),
            &FieldKind::Opaque(Some(Value::Number(7))),
            &FieldKind::String(None),
            &FieldKind::Typed(Type::Named("point".into(), 132), Shape::Optional),
            &FieldKind::Typed(Type::Named("point".into(), 157), Shape::Plain),
        ]
    );
}

#[test]
fn the_c_aliases_rpcgen_accepts() {
    let src = "typedef u_int a; typedef u_long b; typedef u_short c; typedef u_char d;
        typedef u_quad_t e; typedef quad_t f; typedef char g; typedef short h; typedef long i;
        typedef unsigned long j; typedef unsigned char k; typedef unsigned short l;
        typedef unsigned m; typedef unsigned int n; typedef unsigned hyper o; typedef hyper p;
        typedef bool q; typedef float r; typedef double s; typedef long int t;";
    let types: Vec<Type> = defs(src)
        .iter()
        .map(|d| match &field(d).kind {
            FieldKind::Typed(t, Shape::Plain) => t.clone(),
            k => panic!("{k:?}"),
        })
        .collect();
    use Type::*;
    assert_eq!(
        types,
        [
            Unsigned,
            Unsigned,
            Unsigned,
            Unsigned,
            UnsignedHyper,
            Hyper,
            Int,
            Int,
            Int,
            Unsigned,
            Unsigned,
            Unsigned,
            Unsigned,
            Unsigned,
            UnsignedHyper,
            Hyper,
            Bool,
            Float,
            Double,
            Int
        ]
    );
}

#[test]
fn enums_structs_unions_and_programs() {
    let d = defs(
        "enum e { A = 1, B, C = 0x10 };
         struct s { int x; e y; };
         union u switch (e d) { case A: case B: int n; case C: void; default: void; };
         program P { version V { s GET(e) = 1; void PUT(void) = 2; } = 1; } = 0x20000000;",
    );
    let DefKind::Enum(values) = &d[0].kind else {
        panic!()
    };
    assert_eq!(
        values.iter().map(|v| v.value.clone()).collect::<Vec<_>>(),
        [Some(Value::Number(1)), None, Some(Value::Number(16))]
    );
    let DefKind::Struct(fields) = &d[1].kind else {
        panic!()
    };
    assert_eq!(
        fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["x", "y"]
    );
    let DefKind::Union(u) = &d[2].kind else {
        panic!()
    };
    assert_eq!(u.arms[0].cases.len(), 2);
    assert_eq!(u.arms[1].decl, Decl::Void);
    assert_eq!(u.default, Some(Decl::Void));
    let DefKind::Program(versions, Value::Number(0x20000000)) = &d[3].kind else {
        panic!()
    };
    assert_eq!(versions[0].procedures.len(), 2);
    assert_eq!(versions[0].procedures[1].arg, None);
    // B follows A: 2.
    let out = rust("enum e { A = 1, B };");
    assert!(out.contains("B = 2,"), "{out}");
}

#[test]
fn every_discriminant_kind() {
    let out = rust(
        "enum e { A = 0, B = 1 };
         typedef int myint;
         union ue switch (e d) { case A: int x; case B: void; };
         union ui switch (int d) { case -1: void; case 2: hyper h; };
         union un switch (unsigned d) { case 0: void; default: int v; };
         union ub switch (bool d) { case TRUE: int x; case FALSE: void; };
         union ut switch (myint d) { case 3: void; };",
    );
    for want in [
        "E::A => Ue::A(r.i32()?)",
        "-1 => Ui::CaseMinus1",
        "2 => Ui::Case2(r.i64()?)",
        "d => Un::Default(d, r.i32()?)",
        "true => Ub::True(r.i32()?)",
        "3 => Ut::Case3",
    ] {
        assert!(out.contains(want), "{want} missing in\n{out}");
    }
}

#[test]
fn comments_before_an_item_become_its_docs() {
    let out = rust(
        "/* The colour\n * of a thing. */\nenum color { RED = 0 /* not this */, GREEN = 1 };\n\n// A point.\nstruct point { int x; /* after x */ int y; };",
    );
    assert!(out.contains("/// The colour\n/// of a thing.\n"), "{out}");
    assert!(out.contains("/// A point.\n"), "{out}");
    // A comment on the line of a field belongs to it, not to the next one.
    assert!(!out.contains("after x"), "{out}");
    assert!(!out.contains("not this"), "{out}");
}

#[test]
fn the_preprocessor() {
    let src = "%#include <rpc/rpc.h>
#ifdef RPC_HDR
garbage that is never parsed
#else
const IN_ELSE = 1;
#endif
#ifndef RPC_XDR
const NOT_XDR = 2;
#endif
#if defined(RPC_SVC)
garbage
#endif
#if !defined(RPC_CLNT)
const NOT_CLNT = 3;
#endif
#define MINE
#ifdef MINE
const MINE_SEEN = 4;
#endif
#define WIDTH 0x20
typedef int row[WIDTH];
";
    let out = rust(src);
    for want in [
        "IN_ELSE: u32 = 1",
        "NOT_XDR: u32 = 2",
        "NOT_CLNT: u32 = 3",
        "MINE_SEEN: u32 = 4",
        "WIDTH: u32 = 32",
        "[i32; 32]",
    ] {
        assert!(out.contains(want), "{want} missing in\n{out}");
    }
}

#[test]
fn builder_defines_constants_from_c_headers() {
    let out = Builder::new()
        .define("MNTPATHLEN", 1024)
        .generate_source(Path::new("t.x"), "typedef string dirpath<MNTPATHLEN>;")
        .unwrap();
    assert!(out.contains("r.string_bytes(1024)"), "{out}");
}

#[test]
fn syntax_errors_name_the_position_and_what_was_expected() {
    assert_eq!(
        err("struct s {\n    int x\n};"),
        "t.x:3:1: expected `;` after the field, found `}`"
    );
    assert_eq!(
        err("const A 5;"),
        "t.x:1:9: expected `=` after the constant's name, found number 5"
    );
    assert_eq!(
        err("typedef int;"),
        "t.x:1:12: expected a field's name, found `;`"
    );
    assert_eq!(
        err("union u switch (int d) { };"),
        "t.x:1:27: expected at least one `case` in the union, found `;`"
    );
    assert_eq!(
        err("enum e { A = 1 B };"),
        "t.x:1:16: expected `,` or `}` after an enum value, found `B`"
    );
    assert_eq!(
        err("struct s { int x; };\n@"),
        "t.x:2:1: unexpected character `@`: expected a name, a number or punctuation"
    );
    assert_eq!(
        err("/* open"),
        "t.x:1:1: expected `*/` to close this comment"
    );
    assert_eq!(
        err("struct s { struct { int a; } b; };"),
        "t.x:1:19: expected a name after `struct` (anonymous types are not supported: define `struct NAME { ... };` first), found `{`"
    );
    assert_eq!(
        err("program P { version V { int F(int, int) = 1; } = 1; } = 1;"),
        "t.x:1:34: procedure F takes more than one argument (rpcgen -N), which is not supported: expected `)`; put the arguments in a struct"
    );
    assert_eq!(
        err("typedef quadruple q;"),
        "t.x:1:9: `quadruple` is not supported: expected a type Rust has (float or double)"
    );
}

#[test]
fn preprocessor_errors() {
    assert_eq!(
        err("#include \"other.x\"\n"),
        "t.x:1:1: #include is not supported: put the definitions this file needs in it, or pass both files to the Builder"
    );
    assert_eq!(
        err("\n  #pragma once\n"),
        "t.x:2:3: unsupported directive `#pragma`: expected #define, #undef, #ifdef, #ifndef, #if, #else or #endif"
    );
    assert_eq!(
        err("#ifdef X\nconst A = 1;\n"),
        "t.x:3:1: expected #endif before the end of the file"
    );
    assert_eq!(err("#endif\n"), "t.x:1:1: #endif without #if");
    assert_eq!(
        err("#if X > 1\n#endif\n"),
        "t.x:1:1: unsupported #if expression `X > 1`: expected `defined(NAME)`, `!defined(NAME)`, `NAME`, 0 or 1"
    );
    assert_eq!(
        err("#define A (1+2)\n"),
        "t.x:1:11: expected a number as the value of #define A (only numeric #defines are supported)"
    );
}

#[test]
fn semantic_errors_name_the_position() {
    assert_eq!(
        err("struct s {\n  nosuch x;\n};"),
        "t.x:2:3: unknown type `nosuch`: expected a type defined in this file"
    );
    assert_eq!(
        err("typedef int a<MAX>;"),
        "t.x:1:15: unknown constant `MAX`: expected a number or a constant defined before"
    );
    assert_eq!(
        err("struct foo_bar { int a; };\nstruct fooBar { int b; };"),
        "t.x:2:8: `fooBar` and `foo_bar` both become the Rust type `FooBar`: rename one"
    );
    assert_eq!(
        err("struct s { int a_b; int aB; };"),
        "t.x:1:25: two fields of `s` become the Rust field `a_b`: rename one"
    );
    assert_eq!(
        err("struct a { b x; };\nstruct b { a *y; };"),
        "t.x:2:12: recursive type `a`: only a linked list is supported (a struct whose last field is an optional pointer to itself, `a *next`)"
    );
    assert_eq!(
        err("struct node { int v; node *next; };\nstruct holder { node n; };"),
        "t.x:2:17: `node` is a linked list (its last field points to itself): expected `node *` here"
    );
    assert_eq!(
        err("union u switch (int d) { case 1: void; case 1: int x; };"),
        "t.x:1:45: case `1` repeats case `1` of union `u`"
    );
    assert_eq!(
        err("union u switch (bool d) { case 2: void; };"),
        "t.x:1:32: case 2 for a bool discriminant: expected TRUE (1) or FALSE (0)"
    );
    assert_eq!(
        err("enum e { A = 1 };\nunion u switch (e d) { case 7: void; };"),
        "t.x:2:29: case `7` is not a value of enum `e`"
    );
    assert_eq!(
        err("typedef int big[100000];"),
        "t.x:1:13: fixed length 100000 is out of range: expected 0 to 65536 (use a variable-length `<N>` for more)"
    );
    assert_eq!(
        err("typedef opaque o<-1>;"),
        "t.x:1:16: bound -1 is out of range: expected 0 to 4294967295"
    );
    assert_eq!(
        err("typedef int ok;"),
        "t.x:1:13: `ok` would become `Ok`, which the generated code uses from Rust's prelude: rename it"
    );
    assert_eq!(
        err("const A = 1;\nconst A = 2;"),
        "t.x:2:7: `A` is defined twice"
    );
    assert_eq!(
        err("program P { version V { int F(int) = 1; int G(int) = 1; } = 1; } = 1;"),
        "t.x:1:45: procedure number 1 is used twice in version `V`"
    );
}

#[test]
fn names_become_rust_names_in_wire_order() {
    let out = rust("struct my_thing { int type; int camelCase; int self; };");
    assert!(out.contains("pub struct MyThing"), "{out}");
    let fields = ["pub r#type: i32", "pub camel_case: i32", "pub self_: i32"];
    let at: Vec<usize> = fields.iter().map(|f| out.find(f).expect(f)).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{out}");
}

#[test]
fn a_procedure_in_several_versions_gets_the_version_in_its_name() {
    let out = rust(
        "program P { version V1 { void NUL(void) = 0; int ONE(int) = 1; } = 1;
                     version V2 { void NUL(void) = 0; } = 2; } = 9;",
    );
    for want in [
        "pub const NUL_V1: ::peerwire::Procedure<(), ()>",
        "pub const NUL_V2: ::peerwire::Procedure<(), ()>",
        "pub const ONE: ::peerwire::Procedure<i32, i32> = ::peerwire::Procedure::new(P, V1, 1, \"ONE\")",
    ] {
        let squashed: String = out.split_whitespace().collect::<Vec<_>>().join(" ");
        let want: String = want.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            squashed
                .replace("( ", "(")
                .replace(", )", ")")
                .contains(&want),
            "{want} missing in\n{out}"
        );
    }
}

#[test]
fn a_type_named_like_a_versions_server_trait_or_program_is_refused() {
    let program = "program P { version KV_V1 { int KV_GET(int) = 1; } = 1; } = 1;";
    for ty in ["kv_v1_server", "kv_v1_program"] {
        let e = err(&format!("struct {ty} {{ int a; }};\n{program}"));
        assert!(e.starts_with("t.x:2:21: "), "{e}");
        assert!(e.contains("KV_V1"), "{e}");
    }
}

#[test]
fn each_version_gets_a_server_trait_without_null_and_a_program() {
    let r = rust(
        "program P { version V { void N(void) = 0; int F(int) = 1; void G(void) = 2; } = 1; } = 1;",
    );
    assert!(r.contains("pub trait VServer"), "{r}");
    assert!(r.contains("pub struct VProgram<T>(pub T);"), "{r}");
    assert!(
        r.contains("impl<T: VServer> ::peerwire::server::Program for VProgram<T>"),
        "{r}"
    );
    let start = r.find("pub trait VServer").unwrap();
    let server = &r[start..r.find("pub struct VProgram").unwrap()];
    // NULL has no method: the server answers it.
    assert!(!server.contains("fn n("), "{server}");
    assert!(
        server.contains(
            "fn f(\n        &self,\n        ctx: &::peerwire::CallContext,\n        args: i32,"
        ),
        "{server}"
    );
    assert!(
        server.contains("fn g(\n        &self,\n        ctx: &::peerwire::CallContext,\n    )"),
        "{server}"
    );
}

#[test]
fn clients_and_servers_can_be_left_out() {
    let src =
        "struct a { int x; };\nprogram P { version V { void N(void) = 0; a F(a) = 1; } = 1; } = 7;";
    let generate = |clients, servers| {
        Builder::new()
            .clients(clients)
            .servers(servers)
            .generate_source(Path::new("t.x"), src)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let both = generate(true, true);
    assert!(both.contains("pub struct VClient"), "{both}");
    assert!(both.contains("pub trait VServer"), "{both}");
    let types = generate(false, false);
    for gone in ["VClient", "VServer", "VProgram", "server::Program"] {
        assert!(!types.contains(gone), "{gone} in\n{types}");
    }
    // The types and the numbers stay.
    for kept in [
        "pub struct A",
        "impl ::peerwire::proto::xdr::XdrDecode for A",
        "pub const P: u32 = 7;",
        "pub const V: u32 = 1;",
        "pub const F: ::peerwire::Procedure<A, A>",
    ] {
        assert!(types.contains(kept), "{kept} missing from\n{types}");
    }
    let client_only = generate(true, false);
    assert!(client_only.contains("pub struct VClient"), "{client_only}");
    assert!(!client_only.contains("VServer"), "{client_only}");
    let server_only = generate(false, true);
    assert!(!server_only.contains("VClient"), "{server_only}");
    assert!(server_only.contains("pub trait VServer"), "{server_only}");
    // Without a server trait, a type may take its name.
    let e = Builder::new().servers(false).generate_source(
        Path::new("t.x"),
        "struct v_server { int a; };\nprogram P { version V { int F(int) = 1; } = 1; } = 1;",
    );
    assert!(e.is_ok(), "{e:?}");
}

#[test]
fn client_methods_drop_the_longest_prefix_all_procedures_share() {
    let r = rust(
        "program GF_DUMP { version GF_DUMP_V1 { void GF_DUMP_NULL(void) = 0; \
         int GF_DUMP_DUMP(int) = 1; void GF_DUMP_PING(void) = 2; } = 1; } = 1;",
    );
    for method in ["fn null(", "fn dump(", "fn ping("] {
        assert!(r.contains(method), "{method} missing from\n{r}");
    }
    // A shorter shared prefix where the longest would not fit every name.
    let r = rust("program P { version V { void A_B_C(void) = 0; int A_B(int) = 1; } = 1; } = 1;");
    assert!(r.contains("fn b_c(") && r.contains("fn b("), "{r}");
}

#[test]
fn types_without_floats_derive_eq_and_hash() {
    let out = rust(
        "struct p { double w; };\n\
         typedef p *plist;\n\
         union u switch (int k) { case 1: plist l; default: void; };\n\
         struct q { u inner; };\n\
         struct n { int a; string s<>; opaque o[3]; n *next; };\n\
         union m switch (bool b) { case TRUE: n *list; case FALSE: void; };\n\
         typedef unsigned hyper cookie;",
    );
    let derive_of = |item: &str| {
        let at = out
            .find(item)
            .unwrap_or_else(|| panic!("{item} missing from\n{out}"));
        let derive = out[..at].rfind("#[derive(").unwrap();
        out[derive..at].lines().next().unwrap().to_owned()
    };
    let float = "#[derive(Clone, Debug, PartialEq)]";
    let exact = "#[derive(Clone, Debug, PartialEq, Eq, Hash)]";
    // A float at any depth, through a list, a union and a struct.
    for item in [
        "pub struct P ",
        "pub struct Plist(",
        "pub enum U ",
        "pub struct Q ",
    ] {
        assert_eq!(derive_of(item), float, "{item}");
    }
    for item in ["pub struct N ", "pub enum M ", "pub struct Cookie("] {
        assert_eq!(derive_of(item), exact, "{item}");
    }
}
