//! Exposed names of aggregated tools and prompts: `<prefix>__<name>`.

/// The separator between a server prefix and the server's own name.
pub const SEPARATOR: &str = "__";

/// The name a client sees for `name` of the server with `prefix`: `<prefix>__<name>`, or `name`
/// itself when the prefix is empty.
pub fn exposed(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}{SEPARATOR}{name}")
    }
}

/// Split at the first `__` (prefixes never contain it, so the split is unambiguous).
pub fn split(exposed: &str) -> Option<(&str, &str)> {
    exposed.split_once(SEPARATOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_separator_splits() {
        assert_eq!(exposed("everything", "get__sum"), "everything__get__sum");
        assert_eq!(
            split("everything__get__sum"),
            Some(("everything", "get__sum"))
        );
        assert_eq!(exposed("", "echo"), "echo");
        assert_eq!(split("echo"), None);
    }
}
