//! The MCP methods the router tells apart, by name.

/// The MCP methods the router treats specially; everything else is `Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Initialize,
    Initialized,
    Ping,
    ToolsList,
    ToolsCall,
    PromptsList,
    PromptsGet,
    ResourcesList,
    ResourcesTemplatesList,
    ResourcesRead,
    ResourcesSubscribe,
    ResourcesUnsubscribe,
    CompletionComplete,
    LoggingSetLevel,
    Cancelled,
    Progress,
    LogMessage,
    ResourceUpdated,
    ToolsListChanged,
    PromptsListChanged,
    ResourcesListChanged,
    RootsListChanged,
    /// Server-to-client requests.
    SamplingCreateMessage,
    ElicitationCreate,
    RootsList,
    /// 2026-07-28: what a server offers, asked without a handshake.
    ServerDiscover,
    /// 2026-07-28: a stream of list changes and resource updates.
    SubscriptionsListen,
    /// 2026-07-28: the first message of a listen stream, naming what was granted.
    SubscriptionsAcknowledged,
    Other(Box<str>),
    /// Responses have no method.
    None,
}

impl Method {
    pub fn from_name(name: &str) -> Method {
        match name {
            "initialize" => Method::Initialize,
            "notifications/initialized" => Method::Initialized,
            "ping" => Method::Ping,
            "tools/list" => Method::ToolsList,
            "tools/call" => Method::ToolsCall,
            "prompts/list" => Method::PromptsList,
            "prompts/get" => Method::PromptsGet,
            "resources/list" => Method::ResourcesList,
            "resources/templates/list" => Method::ResourcesTemplatesList,
            "resources/read" => Method::ResourcesRead,
            "resources/subscribe" => Method::ResourcesSubscribe,
            "resources/unsubscribe" => Method::ResourcesUnsubscribe,
            "completion/complete" => Method::CompletionComplete,
            "logging/setLevel" => Method::LoggingSetLevel,
            "notifications/cancelled" => Method::Cancelled,
            "notifications/progress" => Method::Progress,
            "notifications/message" => Method::LogMessage,
            "notifications/resources/updated" => Method::ResourceUpdated,
            "notifications/tools/list_changed" => Method::ToolsListChanged,
            "notifications/prompts/list_changed" => Method::PromptsListChanged,
            "notifications/resources/list_changed" => Method::ResourcesListChanged,
            "notifications/roots/list_changed" => Method::RootsListChanged,
            "sampling/createMessage" => Method::SamplingCreateMessage,
            "elicitation/create" => Method::ElicitationCreate,
            "roots/list" => Method::RootsList,
            "server/discover" => Method::ServerDiscover,
            "subscriptions/listen" => Method::SubscriptionsListen,
            "notifications/subscriptions/acknowledged" => Method::SubscriptionsAcknowledged,
            other => Method::Other(other.into()),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Method::Initialize => "initialize",
            Method::Initialized => "notifications/initialized",
            Method::Ping => "ping",
            Method::ToolsList => "tools/list",
            Method::ToolsCall => "tools/call",
            Method::PromptsList => "prompts/list",
            Method::PromptsGet => "prompts/get",
            Method::ResourcesList => "resources/list",
            Method::ResourcesTemplatesList => "resources/templates/list",
            Method::ResourcesRead => "resources/read",
            Method::ResourcesSubscribe => "resources/subscribe",
            Method::ResourcesUnsubscribe => "resources/unsubscribe",
            Method::CompletionComplete => "completion/complete",
            Method::LoggingSetLevel => "logging/setLevel",
            Method::Cancelled => "notifications/cancelled",
            Method::Progress => "notifications/progress",
            Method::LogMessage => "notifications/message",
            Method::ResourceUpdated => "notifications/resources/updated",
            Method::ToolsListChanged => "notifications/tools/list_changed",
            Method::PromptsListChanged => "notifications/prompts/list_changed",
            Method::ResourcesListChanged => "notifications/resources/list_changed",
            Method::RootsListChanged => "notifications/roots/list_changed",
            Method::SamplingCreateMessage => "sampling/createMessage",
            Method::ElicitationCreate => "elicitation/create",
            Method::RootsList => "roots/list",
            Method::ServerDiscover => "server/discover",
            Method::SubscriptionsListen => "subscriptions/listen",
            Method::SubscriptionsAcknowledged => "notifications/subscriptions/acknowledged",
            Method::Other(s) => s,
            Method::None => "",
        }
    }
}
