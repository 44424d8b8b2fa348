//! Rust names for XDR names.

/// Rust's keywords that a raw identifier can escape.
const RAW_OK: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "do", "dyn",
    "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl", "in", "let",
    "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref", "return",
    "static", "struct", "trait", "true", "try", "type", "typeof", "unsafe", "unsized", "use",
    "virtual", "where", "while", "yield",
];

/// Words that cannot be raw identifiers: they get a trailing `_`.
const NO_RAW: &[&str] = &["self", "Self", "super", "crate", "_"];

fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in name.split('_').filter(|p| !p.is_empty()) {
        let mut word = String::new();
        let chars: Vec<char> = part.chars().collect();
        for (i, &c) in chars.iter().enumerate() {
            let boundary = i > 0
                && c.is_ascii_uppercase()
                && (chars[i - 1].is_ascii_lowercase()
                    || (chars[i - 1].is_ascii_uppercase()
                        && chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase())));
            if boundary && !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            word.push(c);
        }
        if !word.is_empty() {
            out.push(word);
        }
    }
    out
}

fn escape(s: String) -> String {
    if NO_RAW.contains(&s.as_str()) {
        format!("{s}_")
    } else if RAW_OK.contains(&s.as_str()) {
        format!("r#{s}")
    } else if s.starts_with(|c: char| c.is_ascii_digit()) || s.is_empty() {
        format!("_{s}")
    } else {
        s
    }
}

/// `nfs_fh3` → `NfsFh3`, `exportnode` → `Exportnode`, `NFS_OK` → `NfsOk`.
pub(crate) fn upper_camel(name: &str) -> String {
    let s: String = words(name)
        .iter()
        .map(|w| {
            let lower = w.to_ascii_lowercase();
            let mut c = lower.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect();
    escape(s)
}

/// `exName` → `ex_name`, `type` → `r#type`.
pub(crate) fn snake(name: &str) -> String {
    let s = words(name)
        .iter()
        .map(|w| w.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join("_");
    escape(s)
}

/// `maxNameLen` → `MAX_NAME_LEN`.
pub(crate) fn screaming(name: &str) -> String {
    let s = words(name)
        .iter()
        .map(|w| w.to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join("_");
    escape(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_rust_conventions() {
        assert_eq!(upper_camel("nfs_fh3"), "NfsFh3");
        assert_eq!(upper_camel("NFS_OK"), "NfsOk");
        assert_eq!(upper_camel("keyValue"), "KeyValue");
        assert_eq!(upper_camel("self"), "Self_");
        assert_eq!(snake("exName"), "ex_name");
        assert_eq!(snake("type"), "r#type");
        assert_eq!(snake("self"), "self_");
        assert_eq!(snake("XMLThing"), "xml_thing");
        assert_eq!(screaming("maxNameLen"), "MAX_NAME_LEN");
    }
}
