use super::*;

fn err(text: &str) -> String {
    Config::parse(text, "t.toml").unwrap_err().0
}

#[test]
fn default_config_is_valid() {
    let c = Config::default_config().unwrap();
    assert!(c.listen.http.ip().is_loopback());
    assert!(!c.servers.is_empty());
}

#[test]
fn errors_name_file_line_and_field() {
    assert_eq!(
        err(
            "[listen]\nhttp = \"127.0.0.1:1\"\n[[servers]]\nname = \"Bad_Name\"\ncommand = \"x\"\n"
        ),
        "t.toml:4: servers[0].name: must match [a-z0-9-]+"
    );
    assert!(err("[[servers]]\nname = \"a\"\n")
        .contains("t.toml:2: servers[0] (a): needs exactly one of"));
    assert!(
        err("[listen]\nhttp = \"0.0.0.0:80\"\n").starts_with("t.toml:2: listen.http: non-loopback")
    );
    assert!(err("[listen]\nbogus = 1\n").starts_with("t.toml:2: unknown field `bogus`"));
    assert!(
        err("[[servers]]\nname = \"a\"\ncommand = \"x\"\nsharing = \"some\"\n")
            .starts_with("t.toml:4: servers[0].sharing")
    );
    assert!(err(
        "[[servers]]\nname = \"a\"\ncommand = \"x\"\n[[servers]]\nname = \"a\"\ncommand = \"y\"\n"
    )
    .contains("duplicate server name"));
}

#[test]
fn shared_client_capabilities_are_opt_in_and_checked() {
    let c = Config::parse(
        "[[servers]]\nname = \"a\"\ncommand = \"x\"\n\
         [[servers]]\nname = \"b\"\ncommand = \"x\"\nclient_capabilities = [\"sampling\", \"elicitation\", \"sampling\"]\n",
        "t",
    )
    .unwrap();
    assert_eq!(c.servers[0].shared_client_capabilities, "{}");
    assert_eq!(
        c.servers[1].shared_client_capabilities,
        r#"{"elicitation":{},"sampling":{}}"#
    );
    assert!(
        err("[[servers]]\nname = \"a\"\ncommand = \"x\"\nclient_capabilities = [\"tasks\"]\n")
            .starts_with("t.toml:4: servers[0].client_capabilities: unknown capability \"tasks\"")
    );
    assert!(err(
        "[[servers]]\nname = \"a\"\ncommand = \"x\"\nsharing = \"per-client\"\nclient_capabilities = [\"roots\"]\n"
    )
    .contains("a per-client server declares its own client's capabilities"));
}

#[test]
fn max_connections_is_for_http_servers_and_bounded() {
    let url = "[[servers]]\nname = \"r\"\nurl = \"http://127.0.0.1:9/mcp\"\n";
    let c = Config::parse(url, "t").unwrap();
    assert_eq!(c.servers[0].max_connections, DEFAULT_UPSTREAM_CONNECTIONS);
    let c = Config::parse(&format!("{url}max_connections = 8\n"), "t").unwrap();
    assert_eq!(c.servers[0].max_connections, 8);
    assert_eq!(
        err(&format!("{url}max_connections = 0\n")),
        "t.toml:4: servers[0].max_connections: must be between 1 and 4096"
    );
    assert_eq!(
        err("[[servers]]\nname = \"a\"\ncommand = \"x\"\nmax_connections = 2\n"),
        "t.toml:4: servers[0].max_connections: is for `url` servers only"
    );
}

#[test]
fn http2_is_for_http_servers_and_off_by_default() {
    let url = "[[servers]]\nname = \"r\"\nurl = \"http://127.0.0.1:9/mcp\"\n";
    let http2 =
        |c: &Config| matches!(c.servers[0].transport, Transport::Http { http2, .. } if http2);
    assert!(!http2(&Config::parse(url, "t").unwrap()));
    assert!(http2(
        &Config::parse(&format!("{url}http2 = true\n"), "t").unwrap()
    ));
    assert_eq!(
        err("[[servers]]\nname = \"a\"\ncommand = \"x\"\nhttp2 = true\n"),
        "t.toml:4: servers[0].http2: is for `url` servers only"
    );
}

#[test]
fn servers_parse_with_defaults() {
    let c = Config::parse(
        "[[servers]]\nname = \"e\"\ncommand = \"node\"\nargs = [\"s.js\"]\npool = 2\n\
         [[servers]]\nname = \"r\"\nurl = \"http://127.0.0.1:9/mcp\"\nprefix = \"\"\nsharing = \"per-client\"\n",
        "t",
    )
    .unwrap();
    assert_eq!((c.servers[0].prefix.as_str(), c.servers[0].pool), ("e", 2));
    assert_eq!(
        (c.servers[1].prefix.as_str(), c.servers[1].sharing),
        ("", Sharing::PerClient)
    );
}
