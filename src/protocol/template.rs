//! Matching URIs against RFC 6570 URI templates, enough to route `resources/read`.
//! `{var}` matches one or more characters other than `/`, `?` and `#`; `{+var}` and
//! `{#var}` match anything; `{?a,b}` and `{&a}` match an optional query tail.

/// Whether `uri` is one the RFC 6570 `template` could produce (the subset above).
pub fn matches(template: &str, uri: &str) -> bool {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return false;
        };
        parts.push(Part::Lit(&rest[..open]));
        let expr = &rest[open + 1..open + close];
        parts.push(match expr.chars().next() {
            Some('+') | Some('#') => Part::Any,
            Some('?') | Some('&') => Part::Query,
            _ => Part::Segment,
        });
        rest = &rest[open + close + 1..];
    }
    parts.push(Part::Lit(rest));
    match_parts(&parts, uri)
}

#[derive(Clone, Copy)]
enum Part<'a> {
    Lit(&'a str),
    Segment,
    Any,
    Query,
}

fn match_parts(parts: &[Part<'_>], s: &str) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return s.is_empty();
    };
    match *first {
        Part::Lit(l) => s.strip_prefix(l).is_some_and(|t| match_parts(rest, t)),
        Part::Query => match_parts(rest, s) || (s.starts_with(['?', '&']) && match_parts(rest, "")),
        Part::Segment | Part::Any => {
            let any = matches!(first, Part::Any);
            let limit = if any {
                s.len()
            } else {
                s.find(['/', '?', '#']).unwrap_or(s.len())
            };
            (1..=limit)
                .rev()
                .filter(|&i| s.is_char_boundary(i))
                .any(|i| match_parts(rest, &s[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn simple_and_reserved_expansion() {
        assert!(matches(
            "test://template/{id}/data",
            "test://template/42/data"
        ));
        assert!(!matches(
            "test://template/{id}/data",
            "test://template/4/2/data"
        ));
        assert!(!matches(
            "test://template/{id}/data",
            "test://template//data"
        ));
        assert!(matches("file:///{+path}", "file:///a/b/c.txt"));
        assert!(matches("demo://resource/{id}", "demo://resource/7"));
        assert!(!matches("demo://resource/{id}", "other://resource/7"));
        assert!(matches("search://{q}{?limit}", "search://x?limit=3"));
    }
}
