//! Name and URI resolution: which server a call goes to, under which of its own names.

use std::ops::Range;

use super::*;

impl Router {
    /// Which server a call goes to, and the edits its frame needs there (the name, the
    /// progress token, a 2026-07-28 client's envelope): from the ingress's read of `params`
    /// for a 2026 request, else from this one read.
    pub(super) fn resolve_call(
        &self,
        session: &Arc<Session>,
        env: &Envelope,
    ) -> Result<(usize, CallEdits), RouteError> {
        let (taken, routes) = {
            let mut st = session.state();
            (st.take_request_spans(&env.frame), st.routes.clone())
        };
        let spans = match taken {
            Some(spans) => spans,
            None => {
                let params = env
                    .params_str()
                    .ok_or_else(|| RouteError::new(code::INVALID_PARAMS, "params are required"))?;
                ParamsPeek::parse(params)
                    .map_err(|e| RouteError::new(code::INVALID_PARAMS, e))?
                    .spans(&env.frame)
            }
        };
        let by_name = |at: &Range<usize>,
                       prompts: bool|
         -> Result<(usize, Option<NameEdit>), RouteError> {
            let name = str_value(env.str_at(at.clone()))
                .ok_or_else(|| RouteError::new(code::INVALID_PARAMS, "name must be a string"))?;
            let route = self.resolve_name(&routes, &name, prompts).ok_or_else(|| {
                RouteError::unlisted(
                    Unlisted::Name,
                    code::INVALID_PARAMS,
                    format!(
                        "unknown {}: {name}",
                        if prompts { "prompt" } else { "tool" }
                    ),
                )
            })?;
            let edit = (route.name != name).then(|| (at.clone(), json::json_string(&route.name)));
            Ok((route.server, edit))
        };
        let by_uri = |at: &Range<usize>| -> Result<usize, RouteError> {
            let uri = str_value(env.str_at(at.clone()))
                .ok_or_else(|| RouteError::new(code::INVALID_PARAMS, "uri must be a string"))?;
            self.resolve_uri(&routes, &uri).ok_or_else(|| {
                RouteError::unlisted(
                    Unlisted::Uri,
                    code::RESOURCE_NOT_FOUND,
                    format!("resource not found: {uri}"),
                )
            })
        };
        let missing = |what: &str| {
            RouteError::new(code::INVALID_PARAMS, format!("params.{what} is required"))
        };
        let (idx, edit) = match env.method {
            Method::ToolsCall => {
                by_name(spans.name.as_ref().ok_or_else(|| missing("name"))?, false)?
            }
            Method::PromptsGet => {
                by_name(spans.name.as_ref().ok_or_else(|| missing("name"))?, true)?
            }
            Method::ResourcesRead => (
                by_uri(spans.uri.as_ref().ok_or_else(|| missing("uri"))?)?,
                None,
            ),
            _ => {
                let r = spans.reference.as_ref().ok_or_else(|| missing("ref"))?;
                match (r.kind, &r.name, &r.uri) {
                    (RefKind::Prompt, Some(name), _) => by_name(name, true)?,
                    (RefKind::Resource, _, Some(uri)) => (by_uri(uri)?, None),
                    _ => {
                        return Err(RouteError::new(
                            code::INVALID_PARAMS,
                            "ref must be a ref/prompt with a name or a ref/resource with a uri",
                        ))
                    }
                }
            }
        };
        let edits = CallEdits {
            name: edit,
            token: spans.token,
            cuts: spans.cuts,
        };
        Ok((idx, edits))
    }

    pub(super) fn has_unprefixed_server(&self) -> bool {
        self.servers.iter().any(|s| s.config.prefix.is_empty())
    }

    /// Resolve an exposed tool or prompt name: as listed to this session, else by prefix, else
    /// by the servers that expose their names unprefixed.
    pub(super) fn resolve_name(
        &self,
        routes: &crate::session::Routes,
        name: &str,
        prompts: bool,
    ) -> Option<Route> {
        let table = if prompts {
            &routes.prompts
        } else {
            &routes.tools
        };
        if let Some(r) = table.get(name) {
            return Some(r.clone());
        }
        if let Some((prefix, rest)) = crate::protocol::names::split(name) {
            if let Some(idx) = self.servers.iter().position(|s| s.config.prefix == prefix) {
                return Some(Route {
                    server: idx,
                    name: rest.to_string(),
                });
            }
        }
        let unprefixed: Vec<usize> = self
            .servers
            .iter()
            .enumerate()
            .filter(|(_, s)| s.config.prefix.is_empty())
            .map(|(i, _)| i)
            .collect();
        let method = if prompts {
            "prompts/list"
        } else {
            "tools/list"
        };
        let listed = |i: usize| {
            self.servers[i]
                .instances
                .first()
                .and_then(|h| h.cached_list(method))
                .is_some_and(|items| {
                    items
                        .iter()
                        .any(|it| catalogue::item_key(it, "name").as_deref() == Some(name))
                })
        };
        match unprefixed.as_slice() {
            [one] => Some(Route {
                server: *one,
                name: name.to_string(),
            }),
            many => many
                .iter()
                .copied()
                .find(|&i| listed(i))
                .map(|server| Route {
                    server,
                    name: name.to_string(),
                }),
        }
    }

    /// Resolve a resource URI: as listed to this session, else by a server's cached resources
    /// and templates, else the only server offering resources.
    pub(super) fn resolve_uri(&self, routes: &crate::session::Routes, uri: &str) -> Option<usize> {
        if let Some(idx) = routes.resources.get(uri) {
            return Some(*idx);
        }
        if let Some((_, idx)) = routes
            .templates
            .iter()
            .find(|(t, _)| crate::protocol::template::matches(t, uri))
        {
            return Some(*idx);
        }
        for (idx, s) in self.servers.iter().enumerate() {
            let Some(h) = s.instances.first() else {
                continue;
            };
            if h.cached_list("resources/list").is_some_and(|l| {
                l.iter()
                    .any(|r| catalogue::item_key(r, "uri").as_deref() == Some(uri))
            }) {
                return Some(idx);
            }
            if h.cached_list("resources/templates/list").is_some_and(|l| {
                l.iter().any(|t| {
                    catalogue::item_key(t, "uriTemplate")
                        .is_some_and(|tpl| crate::protocol::template::matches(&tpl, uri))
                })
            }) {
                return Some(idx);
            }
        }
        let with_resources: Vec<usize> = self
            .servers
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.instances
                    .first()
                    .and_then(|h| h.shared.info.load_full())
                    .is_none_or(|i| i.has("resources"))
            })
            .map(|(i, _)| i)
            .collect();
        match with_resources.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }
}

/// The lists whose items a call of this method names.
pub(super) fn lists_naming(method: &Method) -> Vec<Method> {
    match method {
        Method::ToolsCall => vec![Method::ToolsList],
        Method::PromptsGet => vec![Method::PromptsList],
        Method::ResourcesRead => vec![Method::ResourcesList, Method::ResourcesTemplatesList],
        _ => vec![Method::PromptsList, Method::ResourcesTemplatesList],
    }
}
