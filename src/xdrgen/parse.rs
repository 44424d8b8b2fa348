//! The model of a `.x` file and its recursive-descent parser over tokens.

use super::lex::{Fault, Tok, Token};

/// A size, bound or value: a number or the name of a constant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    Number(i128),
    Name(String, usize),
}

/// A type specifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Type {
    Int,
    Unsigned,
    Hyper,
    UnsignedHyper,
    Bool,
    Float,
    Double,
    /// A named type, and where the name was written.
    Named(String, usize),
}

/// How a declaration shapes its type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    Plain,
    Fixed(Value),
    Variable(Option<Value>),
    Optional,
}

/// A declaration: `void`, or a name with a type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decl {
    Void,
    Field(Field),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Field {
    pub name: String,
    pub at: usize,
    pub kind: FieldKind,
    pub doc: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FieldKind {
    Typed(Type, Shape),
    /// `opaque x[N]` (Some) or `opaque x<N>` (None in Fixed).
    OpaqueFixed(Value),
    Opaque(Option<Value>),
    String(Option<Value>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EnumValue {
    pub name: String,
    pub at: usize,
    pub value: Option<Value>,
    pub doc: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Arm {
    /// Case labels; empty for `default`.
    pub cases: Vec<(Value, usize)>,
    pub decl: Decl,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Union {
    pub disc_name: String,
    pub disc: Type,
    pub arms: Vec<Arm>,
    pub default: Option<Decl>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Procedure {
    pub name: String,
    pub at: usize,
    pub result: Option<Type>,
    pub arg: Option<Type>,
    pub number: Value,
    pub doc: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Version {
    pub name: String,
    pub at: usize,
    pub number: Value,
    pub procedures: Vec<Procedure>,
    pub doc: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DefKind {
    Const(Value),
    /// `const NAME = "text";`
    StrConst(String),
    Enum(Vec<EnumValue>),
    Struct(Vec<Field>),
    Union(Union),
    Typedef(Field),
    Program(Vec<Version>, Value),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Def {
    pub name: String,
    pub at: usize,
    pub doc: Option<String>,
    pub kind: DefKind,
}

pub(crate) struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

type PResult<T> = Result<T, Fault>;

const KEYWORDS: &[&str] = &[
    "bool",
    "case",
    "const",
    "default",
    "double",
    "quadruple",
    "enum",
    "float",
    "hyper",
    "int",
    "opaque",
    "string",
    "struct",
    "switch",
    "typedef",
    "union",
    "unsigned",
    "void",
    "program",
    "version",
];

impl Parser {
    pub fn new(tokens: Vec<Token>) -> Parser {
        Parser { tokens, pos: 0 }
    }

    fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn expected<T>(&self, what: &str) -> PResult<T> {
        let t = self.peek();
        Err(Fault {
            at: t.at,
            message: format!("expected {what}, found {}", t.tok.describe()),
        })
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(s) if s == w)
    }

    fn eat_word(&mut self, w: &str) -> bool {
        let yes = self.is_word(w);
        if yes {
            self.bump();
        }
        yes
    }

    fn is_punct(&self, c: char) -> bool {
        self.peek().tok == Tok::Punct(c)
    }

    fn eat(&mut self, c: char) -> bool {
        let yes = self.is_punct(c);
        if yes {
            self.bump();
        }
        yes
    }

    fn punct(&mut self, c: char, what: &str) -> PResult<()> {
        if self.eat(c) {
            Ok(())
        } else {
            self.expected(&format!("`{c}` {what}"))
        }
    }

    fn name(&mut self, what: &str) -> PResult<(String, usize)> {
        match &self.peek().tok {
            Tok::Ident(s) if !KEYWORDS.contains(&s.as_str()) => {
                let t = self.bump();
                let Tok::Ident(s) = t.tok else { unreachable!() };
                Ok((s, t.at))
            }
            _ => self.expected(what),
        }
    }

    fn value(&mut self, what: &str) -> PResult<Value> {
        match self.peek().tok.clone() {
            Tok::Number(n) => {
                self.bump();
                Ok(Value::Number(n))
            }
            Tok::Ident(_) => {
                let (n, at) = self.name(what)?;
                Ok(Value::Name(n, at))
            }
            _ => self.expected(what),
        }
    }

    /// The whole file.
    pub fn file(&mut self) -> PResult<Vec<Def>> {
        let mut defs = Vec::new();
        while self.peek().tok != Tok::End {
            defs.push(self.definition()?);
        }
        Ok(defs)
    }

    fn definition(&mut self) -> PResult<Def> {
        let doc = self.peek().doc.clone();
        let word = match &self.peek().tok {
            Tok::Ident(w) => w.clone(),
            _ => {
                return self.expected(
                    "a definition (`const`, `enum`, `struct`, `union`, `typedef` or `program`)",
                );
            }
        };
        let (name, at, kind) = match word.as_str() {
            "const" => {
                self.bump();
                let (name, at) = self.name("a constant's name")?;
                self.punct('=', "after the constant's name")?;
                if let Tok::Str(text) = self.peek().tok.clone() {
                    self.bump();
                    (name, at, DefKind::StrConst(text))
                } else {
                    let v = self.value("a number, a string or a constant's name")?;
                    (name, at, DefKind::Const(v))
                }
            }
            "enum" => {
                self.bump();
                let (name, at) = self.name("an enum's name")?;
                (name, at, DefKind::Enum(self.enum_body()?))
            }
            "struct" => {
                self.bump();
                let (name, at) = self.name("a struct's name")?;
                (name, at, DefKind::Struct(self.struct_body()?))
            }
            "union" => {
                self.bump();
                let (name, at) = self.name("a union's name")?;
                (name, at, DefKind::Union(self.union_body()?))
            }
            "typedef" => {
                self.bump();
                match self.declaration()? {
                    Decl::Void => return self.expected("a typedef's type (not `void`)"),
                    Decl::Field(f) => (f.name.clone(), f.at, DefKind::Typedef(f)),
                }
            }
            "program" => {
                self.bump();
                let (name, at) = self.name("a program's name")?;
                let versions = self.program_body()?;
                self.punct('=', "before the program number")?;
                let n = self.value("a program number")?;
                (name, at, DefKind::Program(versions, n))
            }
            _ => {
                return self.expected(
                    "a definition (`const`, `enum`, `struct`, `union`, `typedef` or `program`)",
                );
            }
        };
        self.punct(';', "after the definition")?;
        Ok(Def {
            name,
            at,
            doc,
            kind,
        })
    }

    fn enum_body(&mut self) -> PResult<Vec<EnumValue>> {
        self.punct('{', "to open the enum")?;
        let mut values = Vec::new();
        loop {
            let doc = self.peek().doc.clone();
            let (name, at) = self.name("an enum value's name")?;
            let value = if self.eat('=') {
                Some(self.value("a number or a constant's name")?)
            } else {
                None
            };
            values.push(EnumValue {
                name,
                at,
                value,
                doc,
            });
            if self.eat(',') {
                if self.eat('}') {
                    break;
                }
                continue;
            }
            if self.eat('}') {
                break;
            }
            return self.expected("`,` or `}` after an enum value");
        }
        Ok(values)
    }

    fn struct_body(&mut self) -> PResult<Vec<Field>> {
        self.punct('{', "to open the struct")?;
        let mut fields = Vec::new();
        while !self.eat('}') {
            match self.declaration()? {
                Decl::Void => return self.expected("a struct field (not `void`)"),
                Decl::Field(f) => fields.push(f),
            }
            self.punct(';', "after the field")?;
        }
        if fields.is_empty() {
            return self.expected("at least one field in the struct");
        }
        Ok(fields)
    }

    fn union_body(&mut self) -> PResult<Union> {
        if !self.eat_word("switch") {
            return self.expected("`switch` after the union's name");
        }
        self.punct('(', "after `switch`")?;
        let disc = self.type_spec()?;
        let (disc_name, _) = self.name("the discriminant's name")?;
        self.punct(')', "after the discriminant")?;
        self.punct('{', "to open the union")?;
        let mut arms = Vec::new();
        let mut default = None;
        loop {
            if self.eat_word("case") {
                let mut cases = Vec::new();
                loop {
                    let at = self.peek().at;
                    cases.push((self.value("a case value")?, at));
                    self.punct(':', "after the case value")?;
                    if !self.eat_word("case") {
                        break;
                    }
                }
                let decl = self.declaration()?;
                self.punct(';', "after the arm")?;
                arms.push(Arm { cases, decl });
            } else if self.eat_word("default") {
                if default.is_some() {
                    return self.expected("one `default` arm only");
                }
                self.punct(':', "after `default`")?;
                default = Some(self.declaration()?);
                self.punct(';', "after the arm")?;
            } else if self.eat('}') {
                break;
            } else {
                return self.expected("`case`, `default` or `}`");
            }
        }
        if arms.is_empty() {
            return self.expected("at least one `case` in the union");
        }
        Ok(Union {
            disc_name,
            disc,
            arms,
            default,
        })
    }

    fn program_body(&mut self) -> PResult<Vec<Version>> {
        self.punct('{', "to open the program")?;
        let mut versions = Vec::new();
        while !self.eat('}') {
            let doc = self.peek().doc.clone();
            if !self.eat_word("version") {
                return self.expected("`version` or `}`");
            }
            let (name, at) = self.name("a version's name")?;
            self.punct('{', "to open the version")?;
            let mut procedures = Vec::new();
            while !self.eat('}') {
                procedures.push(self.procedure()?);
            }
            self.punct('=', "before the version number")?;
            let number = self.value("a version number")?;
            self.punct(';', "after the version")?;
            versions.push(Version {
                name,
                at,
                number,
                procedures,
                doc,
            });
        }
        if versions.is_empty() {
            return self.expected("at least one version in the program");
        }
        Ok(versions)
    }

    fn proc_type(&mut self) -> PResult<Option<Type>> {
        if self.eat_word("void") {
            Ok(None)
        } else {
            self.type_spec().map(Some)
        }
    }

    fn procedure(&mut self) -> PResult<Procedure> {
        let doc = self.peek().doc.clone();
        let result = self.proc_type()?;
        let (name, at) = self.name("a procedure's name")?;
        self.punct('(', "after the procedure's name")?;
        let arg = self.proc_type()?;
        if self.is_punct(',') {
            return Err(Fault {
                at: self.peek().at,
                message: format!(
                    "procedure {name} takes more than one argument (rpcgen -N), which is not supported: expected `)`; put the arguments in a struct"
                ),
            });
        }
        if !self.is_punct(')') && arg.is_some() {
            // rpcgen -N also allows a name after the argument's type.
            return self.expected("`)` after the procedure's argument type");
        }
        self.punct(')', "after the procedure's argument type")?;
        self.punct('=', "before the procedure number")?;
        let number = self.value("a procedure number")?;
        self.punct(';', "after the procedure")?;
        Ok(Procedure {
            name,
            at,
            result,
            arg,
            number,
            doc,
        })
    }

    /// A type specifier, with rpcgen's C aliases.
    fn type_spec(&mut self) -> PResult<Type> {
        let Tok::Ident(word) = self.peek().tok.clone() else {
            return self.expected("a type");
        };
        let at = self.peek().at;
        let ty = match word.as_str() {
            "unsigned" => {
                self.bump();
                match &self.peek().tok {
                    Tok::Ident(w) if w == "hyper" => {
                        self.bump();
                        return Ok(Type::UnsignedHyper);
                    }
                    Tok::Ident(w) if ["int", "long", "short", "char"].contains(&w.as_str()) => {
                        self.bump();
                    }
                    _ => {}
                }
                return Ok(Type::Unsigned);
            }
            "int" | "long" | "short" | "char" => Type::Int,
            "u_int" | "u_long" | "u_short" | "u_char" => Type::Unsigned,
            "hyper" | "quad_t" | "longlong_t" | "int64_t" => Type::Hyper,
            "u_quad_t" | "u_longlong_t" | "uint64_t" | "u_int64_t" => Type::UnsignedHyper,
            "int32_t" => Type::Int,
            "uint32_t" | "u_int32_t" => Type::Unsigned,
            "bool" | "bool_t" => Type::Bool,
            "float" => Type::Float,
            "double" => Type::Double,
            "quadruple" => {
                return Err(Fault {
                    at,
                    message:
                        "`quadruple` is not supported: expected a type Rust has (float or double)"
                            .into(),
                });
            }
            "struct" | "enum" | "union" => {
                self.bump();
                if self.is_punct('{') {
                    return self.expected(&format!(
                        "a name after `{word}` (anonymous types are not supported: define `{word} NAME {{ ... }};` first)"
                    ));
                }
                let (n, at) = self.name(&format!("a type name after `{word}`"))?;
                return Ok(Type::Named(n, at));
            }
            _ => {
                let (n, at) = self.name("a type")?;
                return Ok(Type::Named(n, at));
            }
        };
        self.bump();
        // `long int`, `short int`
        if matches!(ty, Type::Int) && word != "int" && self.is_word("int") {
            self.bump();
        }
        Ok(ty)
    }

    fn declaration(&mut self) -> PResult<Decl> {
        let doc = self.peek().doc.clone();
        if self.eat_word("void") {
            return Ok(Decl::Void);
        }
        if self.eat_word("opaque") {
            let (name, at) = self.name("a name after `opaque`")?;
            let kind = if self.eat('[') {
                let v = self.value("the opaque data's length")?;
                self.punct(']', "after the length")?;
                FieldKind::OpaqueFixed(v)
            } else if self.eat('<') {
                let v = self.bound()?;
                FieldKind::Opaque(v)
            } else {
                return self.expected("`[` or `<` after an opaque's name");
            };
            return Ok(Decl::Field(Field {
                name,
                at,
                kind,
                doc,
            }));
        }
        if self.eat_word("string") {
            let (name, at) = self.name("a name after `string`")?;
            if !self.eat('<') {
                return self.expected("`<` after a string's name");
            }
            let v = self.bound()?;
            return Ok(Decl::Field(Field {
                name,
                at,
                kind: FieldKind::String(v),
                doc,
            }));
        }
        let ty = self.type_spec()?;
        let optional = self.eat('*');
        let (name, at) = self.name("a field's name")?;
        let shape = if optional {
            Shape::Optional
        } else if self.eat('[') {
            let v = self.value("the array's length")?;
            self.punct(']', "after the length")?;
            Shape::Fixed(v)
        } else if self.eat('<') {
            Shape::Variable(self.bound()?)
        } else {
            Shape::Plain
        };
        Ok(Decl::Field(Field {
            name,
            at,
            kind: FieldKind::Typed(ty, shape),
            doc,
        }))
    }

    /// After `<`: an optional bound and `>`.
    fn bound(&mut self) -> PResult<Option<Value>> {
        if self.eat('>') {
            return Ok(None);
        }
        let v = self.value("a bound or `>`")?;
        self.punct('>', "after the bound")?;
        Ok(Some(v))
    }
}
