//! Merged lists: every upstream's full list (all pages, cached until list_changed), merged in
//! configuration order under exposed names, paged with the router's own cursors.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::value::RawValue;

use super::RouteError;
use super::Router;
use crate::protocol::list_page::ListPage;
use crate::protocol::{cursor, names, Era};
use crate::session::{Route, Routes};
use crate::upstream::{ListItems, UpstreamHandle};
use crate::upstream::{Session, UpstreamError};
use crate::wire::envelope::{code, span_of};
use crate::wire::params::ParamsPeek;
use crate::wire::rewrite::{splice, Edit};
use crate::wire::{json, Envelope, Method};

/// Most pages fetched from one upstream for one list (a guard against endless cursors).
const MAX_PAGES: usize = 1000;

struct ListKind {
    method: &'static str,
    field: &'static str,
    capability: &'static str,
    /// The item field that names it: rewritten with the prefix for tools and prompts.
    key: &'static str,
    prefixed: bool,
}

fn kind(method: &Method) -> Option<ListKind> {
    let k = |method, field, capability, key, prefixed| ListKind {
        method,
        field,
        capability,
        key,
        prefixed,
    };
    Some(match method {
        Method::ToolsList => k("tools/list", "tools", "tools", "name", true),
        Method::PromptsList => k("prompts/list", "prompts", "prompts", "name", true),
        Method::ResourcesList => k("resources/list", "resources", "resources", "uri", false),
        Method::ResourcesTemplatesList => k(
            "resources/templates/list",
            "resourceTemplates",
            "resources",
            "uriTemplate",
            false,
        ),
        _ => return None,
    })
}

/// The top-level fields of a JSON object, unparsed.
fn fields(json: &[u8]) -> Option<HashMap<Cow<'_, str>, &RawValue>> {
    serde_json::from_slice(json).ok()
}

/// A top-level string field of a list item.
pub(super) fn item_key(item: &RawValue, key: &str) -> Option<String> {
    serde_json::from_str(fields(item.get().as_bytes())?.get(key)?.get()).ok()
}

/// What a client may do with a list or read result (2026-07-28 `ttlMs` and `cacheScope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheHint {
    pub ttl_ms: u64,
    /// `public`: the same for every client, so anyone may share it.
    pub public: bool,
}

impl CacheHint {
    /// A handshake-era server's list: no ttl; the same for every client unless the server is
    /// per-client.
    fn handshake_era(per_client: bool) -> CacheHint {
        CacheHint {
            ttl_ms: 0,
            public: !per_client,
        }
    }

    /// Both hints at once: the shorter ttl, and public only if both are.
    fn and(self, other: CacheHint) -> CacheHint {
        CacheHint {
            ttl_ms: self.ttl_ms.min(other.ttl_ms),
            public: self.public && other.public,
        }
    }
}

/// One upstream's full list, with what its server said about caching it.
struct Listed {
    items: Arc<Vec<Box<RawValue>>>,
    hint: CacheHint,
}

/// Fetch every page of a list from one upstream, or take it from the cache.
///
/// A handshake-era server's list is kept until it says list_changed; it gives no ttl, and a
/// shared one's list is the same for every client. A 2026-07-28 server is asked with the
/// calling client's own capabilities (what it lists may depend on them), and its list is
/// shared with other clients only if every page said `public`, for the smallest `ttlMs`
/// they gave; a `private` list serves only the request that fetched it.
async fn fetch_all(h: &UpstreamHandle, k: &ListKind, caps: &[u8]) -> Result<Listed, UpstreamError> {
    let per_client = h.shared.owner.is_some();
    if let Some((items, left)) = h.cached_list_expiring(k.method) {
        let hint = match left {
            Some(left) => CacheHint {
                ttl_ms: left.as_millis().max(1) as u64,
                public: true,
            },
            None => CacheHint::handshake_era(per_client),
        };
        return Ok(Listed { items, hint });
    }
    let (items, hint) = fetch_pages(h, k, caps).await?;
    // Asked again: a server not yet connected when this began may have turned out 2026.
    let modern = h.is_modern();
    let hint = match (modern, hint) {
        (false, _) => {
            h.store_list(k.method, items.clone(), None);
            CacheHint::handshake_era(per_client)
        }
        (true, Some(hint)) => {
            if hint.public && hint.ttl_ms > 0 && !per_client {
                h.store_list(
                    k.method,
                    items.clone(),
                    Some(std::time::Duration::from_millis(hint.ttl_ms)),
                );
            }
            CacheHint {
                ttl_ms: hint.ttl_ms,
                public: hint.public && !per_client,
            }
        }
        (true, None) => CacheHint {
            ttl_ms: 0,
            public: false,
        },
    };
    Ok(Listed { items, hint })
}

/// Learn a 2026-07-28 server's `Mcp-Param-*` headers again after it said its tools
/// changed, before any client lists them. The list is asked with no client capabilities
/// and kept for nothing else (a list is cached only as it would be for a client that asked).
pub(super) async fn learn_param_headers(h: &UpstreamHandle) {
    let Some(k) = kind(&Method::ToolsList) else {
        return;
    };
    if let Err(e) = fetch_pages(h, &k, b"{}").await {
        tracing::debug!(server = %h.shared.name, "tools/list for Mcp-Param headers: {e}");
    }
}

/// Every page of one list, straight from the server, with the most careful of the pages'
/// cache hints (2026-07-28 servers; `None` for handshake-era ones). A fetched tool list
/// also updates the server's `Mcp-Param-*` headers.
async fn fetch_pages(
    h: &UpstreamHandle,
    k: &ListKind,
    caps: &[u8],
) -> Result<(ListItems, Option<CacheHint>), UpstreamError> {
    let modern = h.is_modern();
    let mut hint: Option<CacheHint> = None;
    let mut items = Vec::new();
    let mut next: Option<Bytes> = None;
    for _ in 0..MAX_PAGES {
        let cursor = next.take();
        let params = (modern || cursor.is_some()).then(|| {
            let mut p = BytesMut::from(&b"{"[..]);
            if modern {
                p.put_slice(b"\"_meta\":{\"io.modelcontextprotocol/clientCapabilities\":");
                p.put_slice(caps);
                p.put_u8(b'}');
            }
            if let Some(c) = cursor {
                if modern {
                    p.put_u8(b',');
                }
                p.put_slice(b"\"cursor\":");
                p.put_slice(&c);
            }
            p.put_u8(b'}');
            p.freeze()
        });
        let result = h.internal(k.method, params).await?;
        let page = ListPage::parse(std::str::from_utf8(&result).unwrap_or(""), k.field).map_err(
            |why| UpstreamError::malformed(&h.shared.name, format!("{}: {why}", k.method)),
        )?;
        let page_hint = CacheHint {
            ttl_ms: page.ttl_ms,
            public: page.public,
        };
        hint = Some(hint.map_or(page_hint, |h| h.and(page_hint)));
        items.extend(page.items);
        match page.next_cursor {
            Some(c) => next = Some(Bytes::from(c)),
            None => break,
        }
    }
    let items = Arc::new(items);
    if k.method == "tools/list" {
        h.learn_tools(&items);
    }
    Ok((items, hint))
}

/// Rename a list item's `key` field by splicing its value.
fn renamed(item: &RawValue, key: &str, new_name: &str) -> Bytes {
    let text = item.get();
    let Some(value) = fields(text.as_bytes()).and_then(|f| f.get(key).copied()) else {
        return Bytes::copy_from_slice(text.as_bytes());
    };
    let range = span_of(text.as_bytes(), value.get());
    splice(
        text.as_bytes(),
        &mut [Edit {
            range,
            with: &json::json_string(new_name),
        }],
    )
}

/// `{"<field>":[..items..],"nextCursor"?:..,"_meta"?:{..},"ttlMs"?:..,"cacheScope"?:..}`;
/// the hints only for 2026-07-28 clients.
pub fn merged_list_result(
    field: &str,
    items: &[Bytes],
    next: Option<String>,
    unavailable: &[String],
    hint: Option<CacheHint>,
) -> Bytes {
    let size: usize = items.iter().map(|i| i.len() + 1).sum();
    let mut out = BytesMut::with_capacity(size + 128);
    out.put_u8(b'{');
    json::push_str(&mut out, field);
    out.put_u8(b':');
    json::push_array(&mut out, items);
    if let Some(next) = next {
        out.put_slice(b",\"nextCursor\":");
        json::push_str(&mut out, &next);
    }
    if !unavailable.is_empty() {
        // Say which servers are missing rather than failing the whole list.
        out.put_slice(b",\"_meta\":{\"io.switchyard/unavailable\":[");
        for (i, s) in unavailable.iter().enumerate() {
            if i > 0 {
                out.put_u8(b',');
            }
            json::push_str(&mut out, s);
        }
        out.put_slice(b"]}");
    }
    if let Some(h) = hint {
        out.put_slice(b",\"ttlMs\":");
        out.put_slice(h.ttl_ms.to_string().as_bytes());
        out.put_slice(if h.public {
            b",\"cacheScope\":\"public\""
        } else {
            b",\"cacheScope\":\"private\""
        });
    }
    out.put_u8(b'}');
    out.freeze()
}

impl Router {
    pub(super) async fn list(
        self: &Arc<Self>,
        session: &Arc<Session>,
        env: &Envelope,
    ) -> Result<Bytes, RouteError> {
        let k = kind(&env.method)
            .ok_or_else(|| RouteError::new(code::METHOD_NOT_FOUND, "not a list method"))?;
        let offset = match env.params_str().map(ParamsPeek::parse) {
            Some(Err(e)) => return Err(RouteError::new(code::INVALID_PARAMS, e)),
            Some(Ok(p)) => match p.cursor {
                Some(c) => cursor::decode(&c)
                    .ok_or_else(|| RouteError::new(code::INVALID_PARAMS, "invalid cursor"))?,
                None => 0,
            },
            None => 0,
        };
        let (merged, unavailable, hint) = self.merge(session, &env.method).await;
        if offset > merged.len() {
            return Err(RouteError::new(code::INVALID_PARAMS, "invalid cursor"));
        }
        let page = self.config.limits.page_size;
        let end = (offset + page).min(merged.len());
        let next = (end < merged.len()).then(|| cursor::encode(end));
        // A list missing a server is not worth keeping.
        let hint = (session.era() == Era::Modern).then_some(CacheHint {
            ttl_ms: if unavailable.is_empty() {
                hint.ttl_ms
            } else {
                0
            },
            public: hint.public,
        });
        Ok(merged_list_result(
            k.field,
            &merged[offset..end],
            next,
            &unavailable,
            hint,
        ))
    }

    /// Fetch (or take from cache) every server's list of this kind, merge them under exposed
    /// names, and record the names and URIs as this session's routes. Returns the merged
    /// items, the servers that did not answer, and what may be done with the whole.
    pub(super) async fn merge(
        self: &Arc<Self>,
        session: &Arc<Session>,
        method: &Method,
    ) -> (Vec<Bytes>, Vec<String>, CacheHint) {
        let mut hint = CacheHint {
            ttl_ms: u64::MAX,
            public: true,
        };
        let Some(k) = kind(method) else {
            return (Vec::new(), Vec::new(), hint);
        };
        let caps = session.caps().json();
        // Ask every server that offers this list at once, each with its own deadline.
        let mut tasks = Vec::new();
        for idx in 0..self.servers.len() {
            let Ok(h) = self.instance(idx, session) else {
                continue;
            };
            if h.shared
                .info
                .load()
                .as_ref()
                .is_some_and(|i| !i.has(k.capability))
            {
                continue;
            }
            let timeout = self.config.limits.list_timeout;
            let Some(kk) = kind(method) else { continue };
            let caps = caps.clone();
            tasks.push((
                idx,
                tokio::spawn(async move {
                    tokio::time::timeout(timeout, fetch_all(&h, &kk, &caps)).await
                }),
            ));
        }
        let mut fetched = Vec::new();
        let mut unavailable = Vec::new();
        for (idx, task) in tasks {
            let name = &self.servers[idx].config.name;
            match task.await {
                Ok(Ok(Ok(listed))) => {
                    hint = hint.and(listed.hint);
                    fetched.push((idx, listed.items));
                }
                Ok(Ok(Err(e))) => {
                    tracing::warn!(server = %name, "{} failed: {e}", k.method);
                    unavailable.push(name.clone());
                }
                _ => {
                    tracing::warn!(server = %name, "{} did not answer in time", k.method);
                    unavailable.push(name.clone());
                }
            }
        }

        let mut routes: HashMap<String, Route> = HashMap::new();
        let mut uris: HashMap<String, usize> = HashMap::new();
        let mut templates: Vec<(String, usize)> = Vec::new();
        let mut merged = Vec::new();
        for (idx, items) in &fetched {
            let server = &self.servers[*idx].config;
            for item in items.iter() {
                let Some(name) = item_key(item, k.key) else {
                    continue;
                };
                if !k.prefixed {
                    match k.field {
                        "resources" => {
                            uris.entry(name).or_insert(*idx);
                        }
                        _ => templates.push((name, *idx)),
                    }
                    merged.push(Bytes::copy_from_slice(item.get().as_bytes()));
                    continue;
                }
                // A collision is never fatal: the later server (in configuration order) gets
                // its server name as the prefix, then a counter.
                let mut exposed = names::exposed(&server.prefix, &name);
                let mut n = 1;
                while routes.contains_key(&exposed) {
                    exposed = if n == 1 {
                        names::exposed(&server.name, &name)
                    } else {
                        format!("{}_{n}", names::exposed(&server.name, &name))
                    };
                    n += 1;
                }
                if n > 1 {
                    tracing::warn!(server = %server.name, "{} name {name:?} collides; exposed as {exposed:?}", k.field);
                }
                merged.push(if exposed == name {
                    Bytes::copy_from_slice(item.get().as_bytes())
                } else {
                    renamed(item, k.key, &exposed)
                });
                routes.insert(exposed, Route { server: *idx, name });
            }
        }
        {
            let mut st = session.state();
            let old = &st.routes;
            let mut next = Routes {
                tools: old.tools.clone(),
                prompts: old.prompts.clone(),
                resources: old.resources.clone(),
                templates: old.templates.clone(),
            };
            match k.field {
                "tools" => next.tools = routes,
                "prompts" => next.prompts = routes,
                "resources" => next.resources = uris,
                _ => next.templates = templates,
            }
            st.routes = Arc::new(next);
        }
        if hint.ttl_ms == u64::MAX {
            hint.ttl_ms = 0; // no server offers this list
        }
        (merged, unavailable, hint)
    }
}
