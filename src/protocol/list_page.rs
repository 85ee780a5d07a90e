//! One page of a list result (`tools/list`, `prompts/list`, `resources/list`,
//! `resources/templates/list`): its items, the cursor to the next page, and the 2026-07-28
//! cache hints. Read by the router's catalogue and by an upstream learning its tools when
//! it connects, so both read pages the same way.

use serde_json::value::RawValue;

use crate::wire::json::Members;

/// A page as the server sent it.
#[derive(Debug)]
pub struct ListPage {
    /// The items, raw JSON each.
    pub items: Vec<Box<RawValue>>,
    /// `nextCursor`, raw JSON (`None` when absent or `null`: the last page).
    pub next_cursor: Option<String>,
    /// `ttlMs` (2026-07-28), 0 when absent.
    pub ttl_ms: u64,
    /// `cacheScope` is `"public"` (2026-07-28).
    pub public: bool,
}

impl ListPage {
    /// Read a list `result` whose items are in `field` (`tools`, `prompts`, ...).
    pub fn parse(result: &str, field: &str) -> Result<ListPage, String> {
        let page = Members::parse(result).ok_or("a list result that is no object")?;
        let list = page
            .get(field)
            .ok_or_else(|| format!("a list result without {field}"))?;
        let items: Vec<&RawValue> =
            serde_json::from_str(list.get()).map_err(|e| format!("{field} is no array: {e}"))?;
        Ok(ListPage {
            items: items.into_iter().map(|r| r.to_owned()).collect(),
            next_cursor: page
                .get("nextCursor")
                .filter(|c| c.get() != "null")
                .map(|c| c.get().to_string()),
            ttl_ms: page
                .get("ttlMs")
                .and_then(|t| t.get().parse().ok())
                .unwrap_or(0),
            public: page
                .get("cacheScope")
                .is_some_and(|s| s.get() == "\"public\""),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_gives_items_cursor_and_hints() {
        let p = ListPage::parse(
            r#"{"tools":[{"name":"a"},{"name":"b"}],"nextCursor":"c2","ttlMs":500,"cacheScope":"public"}"#,
            "tools",
        )
        .unwrap();
        assert_eq!(p.items.len(), 2);
        assert_eq!(p.items[1].get(), r#"{"name":"b"}"#);
        assert_eq!(p.next_cursor.as_deref(), Some("\"c2\""));
        assert_eq!((p.ttl_ms, p.public), (500, true));
        let last = ListPage::parse(r#"{"tools":[],"nextCursor":null}"#, "tools").unwrap();
        assert!(last.next_cursor.is_none() && !last.public && last.ttl_ms == 0);
        assert!(ListPage::parse(r#"{"prompts":[]}"#, "tools").is_err());
        assert!(ListPage::parse(r#"{"tools":{}}"#, "tools").is_err());
        assert!(ListPage::parse("[]", "tools").is_err());
    }
}
