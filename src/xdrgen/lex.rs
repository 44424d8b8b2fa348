//! The preprocessor and the lexer.
//!
//! The preprocessor works on whole lines, before lexing, and keeps the line
//! offsets: a line it consumes becomes spaces. It drops `%` pass-through
//! lines, evaluates `#ifdef`/`#ifndef`/`#if`/`#else`/`#endif` (no name is
//! defined except by `#define` in the file itself, so `RPC_HDR`, `RPC_XDR`,
//! `RPC_SVC` and `RPC_CLNT` blocks are dropped and their `#else` branches
//! kept), records `#define NAME value` as a constant and `#define NAME` as
//! a name for `#ifdef`, honours `#undef`, and refuses `#include` and any
//! other directive with an error.
//!
//! The lexer (winnow) turns the remaining text into identifiers, numbers
//! and punctuation, each with its byte offset, and keeps the comment that
//! ends just before a token (on an earlier line) as that token's doc text.

use winnow::ascii::{digit1, hex_digit1, multispace1};
use winnow::combinator::{alt, delimited, opt, preceded};
use winnow::prelude::*;
use winnow::token::{literal, one_of, take_until, take_while};

/// A `#define NAME value` seen by the preprocessor.
#[derive(Clone, Debug)]
pub(crate) struct Define {
    pub name: String,
    pub value: String,
    /// Byte offset of the value in the source.
    pub at: usize,
}

/// The source after preprocessing: same length in lines, directives blanked.
pub(crate) struct Preprocessed {
    pub text: String,
    pub defines: Vec<Define>,
}

/// A syntax error at a byte offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fault {
    pub at: usize,
    pub message: String,
}

fn fault(at: usize, message: impl Into<String>) -> Fault {
    Fault {
        at,
        message: message.into(),
    }
}

pub(crate) fn preprocess(src: &str) -> Result<Preprocessed, Fault> {
    let mut text = String::with_capacity(src.len());
    let mut defines: Vec<Define> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    // One entry per open #if: (this branch is active, an earlier branch was taken, outer active).
    let mut stack: Vec<(bool, bool)> = Vec::new();
    let mut offset = 0;
    for line in src.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let active = stack.iter().all(|&(on, _)| on);
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        // A consumed line becomes spaces, so offsets stay those of the source.
        let blank = |text: &mut String| {
            let body = line.trim_end_matches('\n');
            text.extend(std::iter::repeat_n(' ', body.len()));
            text.push_str(&line[body.len()..]);
        };
        if let Some(directive) = trimmed.strip_prefix('#') {
            let at = start + indent;
            let body = directive.trim();
            let (word, rest) = match body.find(|c: char| c.is_whitespace() || c == '(') {
                Some(i) => (&body[..i], body[i..].trim()),
                None => (body, ""),
            };
            let rest = strip_line_comment(rest);
            match word {
                "ifdef" | "ifndef" => {
                    let defined = names.iter().any(|n| n == rest.trim());
                    let on = defined == (word == "ifdef");
                    stack.push((on, on));
                }
                "if" => {
                    let on = eval_if(rest, &names).ok_or_else(|| {
                        fault(
                            at,
                            format!(
                                "unsupported #if expression `{rest}`: expected `defined(NAME)`, `!defined(NAME)`, `NAME`, 0 or 1"
                            ),
                        )
                    })?;
                    stack.push((on, on));
                }
                "else" => match stack.last_mut() {
                    Some((on, taken)) => {
                        *on = !*taken;
                        *taken = true;
                    }
                    None => return Err(fault(at, "#else without #if")),
                },
                "endif" => {
                    if stack.pop().is_none() {
                        return Err(fault(at, "#endif without #if"));
                    }
                }
                _ if !active => {}
                "define" => {
                    let (name, value) = match rest.find(char::is_whitespace) {
                        Some(i) => (&rest[..i], rest[i..].trim()),
                        None => (rest, ""),
                    };
                    if !is_ident(name) {
                        return Err(fault(at, "expected a name after #define"));
                    }
                    names.push(name.to_owned());
                    if !value.is_empty() {
                        let value_at = start + line.find(value).unwrap_or(indent);
                        defines.push(Define {
                            name: name.to_owned(),
                            value: value.to_owned(),
                            at: value_at,
                        });
                    }
                }
                "undef" => names.retain(|n| n != rest.trim()),
                "include" => {
                    return Err(fault(
                        at,
                        "#include is not supported: put the definitions this file needs in it, or pass both files to the Builder",
                    ));
                }
                _ => {
                    return Err(fault(
                        at,
                        format!(
                            "unsupported directive `#{word}`: expected #define, #undef, #ifdef, #ifndef, #if, #else or #endif"
                        ),
                    ));
                }
            }
            blank(&mut text);
        } else if !active || trimmed.starts_with('%') {
            blank(&mut text);
        } else {
            text.push_str(line);
        }
    }
    if !stack.is_empty() {
        return Err(fault(
            src.len(),
            "expected #endif before the end of the file",
        ));
    }
    Ok(Preprocessed { text, defines })
}

fn strip_line_comment(s: &str) -> &str {
    let end = [s.find("//"), s.find("/*")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(s.len());
    s[..end].trim()
}

fn eval_if(expr: &str, names: &[String]) -> Option<bool> {
    let expr = expr.trim();
    if let Some(inner) = expr.strip_prefix('!') {
        return eval_if(inner, names).map(|b| !b);
    }
    if let Some(arg) = expr.strip_prefix("defined") {
        let arg = arg.trim();
        let name = arg
            .strip_prefix('(')
            .and_then(|a| a.strip_suffix(')'))
            .unwrap_or(arg)
            .trim();
        return is_ident(name).then(|| names.iter().any(|n| n == name));
    }
    match expr {
        "0" => Some(false),
        "1" => Some(true),
        name if is_ident(name) => Some(names.iter().any(|n| n == name)),
        _ => None,
    }
}

pub(crate) fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What a token is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Tok {
    Ident(String),
    Number(i128),
    /// A string literal (rpcgen allows them as constants).
    Str(String),
    Punct(char),
    End,
}

impl Tok {
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Number(n) => format!("number {n}"),
            Tok::Str(_) => "a string".to_owned(),
            Tok::Punct(c) => format!("`{c}`"),
            Tok::End => "the end of the file".to_owned(),
        }
    }
}

/// A token, where it starts, and the comment just before it.
#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub tok: Tok,
    pub at: usize,
    pub doc: Option<String>,
}

#[derive(Clone)]
enum Piece<'a> {
    Space,
    Comment(&'a str),
    Tok(Tok),
}

fn block_comment<'a>(input: &mut &'a str) -> winnow::Result<&'a str> {
    preceded(literal("/*"), take_until(0.., "*/"))
        .parse_next(input)
        .and_then(|body| literal("*/").value(body).parse_next(input))
}

fn line_comment<'a>(input: &mut &'a str) -> winnow::Result<&'a str> {
    preceded(literal("//"), take_while(0.., |c| c != '\n')).parse_next(input)
}

fn string_literal<'a>(input: &mut &'a str) -> winnow::Result<&'a str> {
    delimited(
        one_of('"'),
        take_while(0.., |c| c != '"' && c != '\\' && c != '\n'),
        one_of('"'),
    )
    .parse_next(input)
}

fn number(input: &mut &str) -> winnow::Result<i128> {
    let negative = opt(one_of('-')).parse_next(input)?.is_some();
    let magnitude = alt((
        preceded(alt(("0x", "0X")), hex_digit1).try_map(|h| i128::from_str_radix(h, 16)),
        (one_of('0'), digit1).try_map(|(_, o): (char, &str)| i128::from_str_radix(o, 8)),
        digit1.try_map(|d: &str| d.parse::<i128>()),
    ))
    .parse_next(input)?;
    Ok(if negative { -magnitude } else { magnitude })
}

fn piece<'a>(input: &mut &'a str) -> winnow::Result<Piece<'a>> {
    alt((
        multispace1.value(Piece::Space),
        block_comment.map(Piece::Comment),
        line_comment.map(Piece::Comment),
        number.map(|n| Piece::Tok(Tok::Number(n))),
        string_literal.map(|s: &str| Piece::Tok(Tok::Str(s.to_owned()))),
        (
            one_of(|c: char| c.is_ascii_alphabetic() || c == '_'),
            take_while(0.., |c: char| c.is_ascii_alphanumeric() || c == '_'),
        )
            .take()
            .map(|s: &str| Piece::Tok(Tok::Ident(s.to_owned()))),
        one_of([
            '{', '}', '(', ')', '[', ']', '<', '>', ';', ',', '=', ':', '*',
        ])
        .map(|c| Piece::Tok(Tok::Punct(c))),
    ))
    .parse_next(input)
}

/// Splits preprocessed text into tokens; the last is [`Tok::End`].
pub(crate) fn lex(text: &str) -> Result<Vec<Token>, Fault> {
    let mut input = text;
    let mut out = Vec::new();
    // The last comment, and where it ended.
    let mut doc: Option<(String, usize)> = None;
    let mut last_line_end = 0; // offset of the end of the last token
    loop {
        let at = text.len() - input.len();
        if input.is_empty() {
            out.push(Token {
                tok: Tok::End,
                at,
                doc: None,
            });
            return Ok(out);
        }
        if input.starts_with("/*") && !input.contains("*/") {
            return Err(fault(at, "expected `*/` to close this comment"));
        }
        match piece(&mut input) {
            Ok(Piece::Space) => {}
            Ok(Piece::Comment(body)) => {
                // A comment on the line of the previous token describes that
                // token's definition (rpcgen files put them after a field).
                let trailing = !out.is_empty() && !text[last_line_end..at].contains('\n');
                if !trailing {
                    doc = Some((clean_comment(body), text.len() - input.len()));
                }
            }
            Ok(Piece::Tok(tok)) => {
                last_line_end = text.len() - input.len();
                // A comment documents the token right after it: a blank
                // line between them makes it a comment about the file.
                let doc = doc
                    .take()
                    .filter(|(_, end)| text[*end..at].matches('\n').count() <= 1)
                    .map(|(d, _)| d);
                out.push(Token { tok, at, doc });
            }
            Err(_) => {
                let c = input.chars().next().unwrap_or(' ');
                return Err(fault(
                    at,
                    format!(
                        "unexpected character `{}`: expected a name, a number or punctuation",
                        c.escape_default()
                    ),
                ));
            }
        }
    }
}

/// A comment's text without the leading `*` of each line and the blank
/// lines around it.
fn clean_comment(body: &str) -> String {
    let lines: Vec<&str> = body
        .lines()
        .map(|l| {
            let t = l.trim();
            let t = t.strip_prefix('*').unwrap_or(t);
            t.strip_prefix(' ').unwrap_or(t).trim_end()
        })
        .collect();
    let first = lines
        .iter()
        .position(|l| !l.is_empty())
        .unwrap_or(lines.len());
    let last = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(first, |i| i + 1);
    lines[first..last].join("\n")
}
