//! The MCP methods the router tells apart, by name.

/// The MCP methods the router treats specially; everything else is `Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// `initialize`
    Initialize,
    /// `notifications/initialized`
    Initialized,
    /// `ping`
    Ping,
    /// `tools/list`
    ToolsList,
    /// `tools/call`
    ToolsCall,
    /// `prompts/list`
    PromptsList,
    /// `prompts/get`
    PromptsGet,
    /// `resources/list`
    ResourcesList,
    /// `resources/templates/list`
    ResourcesTemplatesList,
    /// `resources/read`
    ResourcesRead,
    /// `resources/subscribe`
    ResourcesSubscribe,
    /// `resources/unsubscribe`
    ResourcesUnsubscribe,
    /// `completion/complete`
    CompletionComplete,
    /// `logging/setLevel`
    LoggingSetLevel,
    /// `notifications/cancelled`
    Cancelled,
    /// `notifications/progress`
    Progress,
    /// `notifications/message`
    LogMessage,
    /// `notifications/resources/updated`
    ResourceUpdated,
    /// `notifications/tools/list_changed`
    ToolsListChanged,
    /// `notifications/prompts/list_changed`
    PromptsListChanged,
    /// `notifications/resources/list_changed`
    ResourcesListChanged,
    /// `notifications/roots/list_changed`
    RootsListChanged,
    /// Server-to-client requests.
    SamplingCreateMessage,
    /// `elicitation/create` (server to client).
    ElicitationCreate,
    /// `roots/list` (server to client).
    RootsList,
    /// 2026-07-28: what a server offers, asked without a handshake.
    ServerDiscover,
    /// 2026-07-28: a stream of list changes and resource updates.
    SubscriptionsListen,
    /// 2026-07-28: the first message of a listen stream, naming what was granted.
    SubscriptionsAcknowledged,
    /// Any other method, by name.
    Other(Box<str>),
    /// Responses have no method.
    None,
}

impl Method {
    /// The variant for a method name.
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

    /// The method's name on the wire (empty for [`Method::None`]).
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
