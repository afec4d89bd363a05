use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "TOLLGATE_MASTER_KEY" => Some("master-key-123".into()),
        "MOONSHOT_API_KEY" => Some("sk-moonshot-secret".into()),
        _ => None,
    }
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "tollgate.toml", &env)
}

const EXAMPLE: &str = r#"
[server]
listen = "127.0.0.1:8080"
master_key = "${TOLLGATE_MASTER_KEY}"

[providers.kimi]
kind = "openai"
base_url = "https://api.moonshot.ai/v1/"
api_key = "${MOONSHOT_API_KEY}"
timeouts = { connect = "2s", idle = "30s" }

[providers.demo]
kind = "mock"
ttft = "0s"
tokens_per_second = 0
usage_shape = "kimi"

[models."kimi-k2.5"]
provider = "kimi"
upstream_model = "kimi-k2.5"

[models.demo]
provider = "demo"
"#;

#[test]
fn the_documented_shape_loads_with_env_expansion() {
    let c = parse(EXAMPLE).unwrap();
    assert_eq!(c.server.master_key.expose(), "master-key-123");
    assert_eq!(c.server.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    let kimi = &c.providers["kimi"];
    match &kimi.kind {
        ProviderKind::OpenAi {
            base_url, api_key, ..
        } => {
            assert_eq!(base_url, "https://api.moonshot.ai/v1");
            assert_eq!(
                api_key.as_ref().map(Secret::expose),
                Some("sk-moonshot-secret")
            );
        }
        other => panic!("unexpected kind {other:?}"),
    }
    assert_eq!(kimi.timeouts.connect, Duration::from_secs(2));
    assert_eq!(kimi.timeouts.idle, Duration::from_secs(30));
    assert_eq!(kimi.timeouts.total, Timeouts::default().total);
    match &c.providers["demo"].kind {
        ProviderKind::Mock(sim) => {
            assert_eq!(sim.ttft, Duration::ZERO);
            assert_eq!(sim.usage_shape, UsageShape::Kimi);
        }
        other => panic!("unexpected kind {other:?}"),
    }
    assert_eq!(c.models["demo"].upstream_model, "demo");
    assert_eq!(c.models["kimi-k2.5"].provider, "kimi");
}

#[test]
fn debug_output_never_shows_secrets() {
    let c = parse(EXAMPLE).unwrap();
    let dump = format!("{c:?}");
    assert!(!dump.contains("sk-moonshot-secret"), "{dump}");
    assert!(!dump.contains("master-key-123"), "{dump}");
}

fn problems(text: &str) -> Vec<(String, String)> {
    let e = parse(text).unwrap_err();
    assert_eq!(e.file, "tollgate.toml");
    e.problems.into_iter().map(|p| (p.key, p.problem)).collect()
}

#[test]
fn unknown_keys_are_rejected_with_their_path() {
    let p = problems("[server]\nmaster_key = \"12345678\"\nlisten_on = \"x\"\n");
    assert_eq!(p[0].0, "server.listen_on");
    assert!(p[0].1.contains("unknown field"), "{p:?}");
    let p = problems("[server]\nmaster_key = \"12345678\"\n[providers.a]\nkind = \"openai\"\nbase_url = \"http://x\"\nbaseurl = 1\n");
    assert_eq!(p[0].0, "providers.a.baseurl");
    let p = problems("[server]\nmaster_key = \"12345678\"\n[extra]\n");
    assert_eq!(p[0].0, "extra");
}

#[test]
fn an_unset_variable_names_the_key_and_the_variable() {
    let p = problems("[server]\nmaster_key = \"${NOT_SET_ANYWHERE}\"\n");
    assert_eq!(
        p,
        vec![(
            "server.master_key".into(),
            "environment variable NOT_SET_ANYWHERE is not set".into()
        )]
    );
}

#[test]
fn syntax_errors_name_the_line_without_expanding_secrets() {
    let e = parse("[server]\nmaster_key = \"${MOONSHOT_API_KEY}\"\nlisten = \n").unwrap_err();
    let text = e.to_string();
    assert!(text.starts_with("tollgate.toml"), "{text}");
    assert!(text.contains("line 3"), "{text}");
    assert!(!text.contains("sk-moonshot-secret"), "{text}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let p = problems(
        r#"
[server]
listen = "nowhere"
shutdown_grace = "soon"
[providers.a]
kind = "openai"
[providers.b]
kind = "grpc"
[providers.c]
kind = "mock"
base_url = "http://x"
usage_shape = "acme"
[models.m]
provider = "zzz"
"#,
    );
    let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
    for want in [
        "server.listen",
        "server.master_key",
        "server.shutdown_grace",
        "providers.a.base_url",
        "providers.b.kind",
        "providers.c.base_url",
        "providers.c.usage_shape",
        "models.\"m\".provider",
    ] {
        assert!(keys.contains(&want), "missing {want} in {p:?}");
    }
}

#[test]
fn timeouts_must_be_durations() {
    let p = problems(
        "[server]\nmaster_key = \"12345678\"\n[providers.a]\nkind = \"openai\"\nbase_url = \"http://x\"\ntimeouts = { idle = \"0s\", total = \"10\" }\n",
    );
    assert!(
        p.iter()
            .any(|(k, why)| k == "providers.a.timeouts.idle" && why.contains("longer than zero")),
        "{p:?}"
    );
    assert!(
        p.iter().any(|(k, _)| k == "providers.a.timeouts.total"),
        "{p:?}"
    );
}

#[test]
fn type_errors_after_expansion_never_echo_the_expanded_value() {
    let e =
        parse("[server]\nmaster_key = \"12345678\"\nmax_body_bytes = \"${MOONSHOT_API_KEY}\"\n")
            .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("server.max_body_bytes"), "{text}");
    assert!(!text.contains("sk-moonshot-secret"), "{text}");
    assert!(
        text.contains("${MOONSHOT_API_KEY}"),
        "the message shows what the file says: {text}"
    );
}

#[test]
fn url_credentials_are_not_echoed() {
    let p = problems("[server]\nmaster_key = \"12345678\"\n[providers.a]\nkind = \"openai\"\nbase_url = \"ftp://user:hunter2@host\"\n");
    assert!(p[0].1.contains("ftp://***@host"), "{p:?}");
    assert!(!p[0].1.contains("hunter2"));
}

#[test]
fn the_readmes_config_reference_is_a_valid_config() {
    let readme = include_str!("../../../README.md");
    let section = &readme[readme.find("## Configuration").expect("the section")..];
    let start = section.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let block = &section[start..start + section[start..].find("```").expect("its end")];
    let lookup = |name: &str| {
        Some(match name {
            "REDIS_URL" => "redis://127.0.0.1:6379".to_owned(),
            _ => format!("value-of-{name}-0123"),
        })
    };
    let config = Config::parse(block, "README.md", &lookup)
        .unwrap_or_else(|e| panic!("the README's config reference must parse: {e}"));
    assert!(config.redis.is_some());
    let auto = &config.routes["auto"];
    assert_eq!(auto.candidates.len(), 3);
    assert_eq!(config.models["kimi-k2.5"].context_window, 256_000);
    assert!(!config.metrics.per_key, "per-key labels are opt-in");
}

#[test]
fn per_key_metrics_are_opt_in_and_the_metrics_table_rejects_unknown_keys() {
    let base = "[server]\nmaster_key = \"12345678\"\n";
    let off = Config::parse(base, "t.toml", &|_| None).unwrap();
    assert!(!off.metrics.per_key);
    let on = Config::parse(
        &format!("{base}[metrics]\nper_key = true\n"),
        "t.toml",
        &|_| None,
    );
    assert!(on.unwrap().metrics.per_key);
    let p = problems(&format!("{base}[metrics]\nper_team = true\n"));
    assert_eq!(p[0].0, "metrics.per_team", "{p:?}");
}

const BASE: &str = "[server]\nmaster_key = \"12345678\"\n[providers.ant]\nkind = \"anthropic\"\nbase_url = \"https://api.anthropic.com\"\n[providers.oai]\nkind = \"openai\"\nbase_url = \"https://api.example.com/v1\"\n[models.a]\nprovider = \"ant\"\n[models.b]\nprovider = \"oai\"\n";

#[test]
fn anthropic_providers_and_routes_are_validated_with_every_problem_named() {
    let p = problems(&format!(
        "{BASE}[providers.bad]\nkind = \"anthropic\"\nbase_url = \"https://x\"\nauth = \"cookie\"\n\
         [providers.oai2]\nkind = \"openai\"\nbase_url = \"https://y\"\nauth = \"bearer\"\n\
         [models.c]\nprovider = \"oai\"\ncapabilities = [\"telepathy\"]\ncontext_window = 0\n\
         [routes.a]\ncandidates = [\"b\"]\n\
         [routes.r1]\ncandidates = [\"a\", \"nope\"]\nstrategy = \"random\"\n\
         [routes.r2]\ncandidates = [\"a\", \"b\"]\nstrategy = \"weighted\"\nweights = [1]\n\
         [routes.r3]\ncandidates = []\n\
         [routes.r4]\ncandidates = [\"a\"]\nweights = [1]\nmax_attempts = 0\n\
         [routes.r5]\ncandidates = [\"a\"]\nlow_budget = {{ below = 1.5, candidates = [] }}\n\
         [routes.r6]\ncandidates = [\"a\"]\nlow_budget = {{ below = 0.2, candidates = [\"ghost\"] }}\n\
         [router]\nbreaker_failures = 0\naffinity_idle = \"0s\"\n\
         [quotas]\nalert_thresholds = [0.8, -1.0]\nalert_webhook = \"ftp://x\"\nstream_step_tokens = 0\n"
    ));
    let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
    for expected in [
        "providers.bad.auth",
        "providers.oai2.auth",
        "models.\"c\".capabilities",
        "models.\"c\".context_window",
        "routes.\"a\"",
        "routes.\"r1\"",
        "routes.\"r1\".strategy",
        "routes.\"r2\".weights",
        "routes.\"r3\".candidates",
        "routes.\"r4\".weights",
        "routes.\"r4\".max_attempts",
        "router.breaker_failures",
        "router.affinity_idle",
        "routes.\"r5\".low_budget.below",
        "routes.\"r5\".low_budget.candidates",
        "routes.\"r6\"",
        "quotas.alert_thresholds",
        "quotas.alert_webhook",
        "quotas.stream_step_tokens",
    ] {
        assert!(keys.contains(&expected), "{expected} missing from {p:?}");
    }
    let text = |key: &str| p.iter().find(|(k, _)| k == key).unwrap().1.clone();
    assert!(text("routes.\"r1\"").contains("'nope'"));
    assert!(text("models.\"c\".capabilities").contains("telepathy"));
    assert!(text("routes.\"r6\"").contains("'ghost'"));
}

#[test]
fn affinity_is_on_where_a_strategy_could_move_a_session_unless_configured() {
    let c = parse(&format!(
        "{BASE}[routes.cheap]\ncandidates = [\"a\", \"b\"]\nstrategy = \"cheapest\"\n\
         [routes.ordered]\ncandidates = [\"a\", \"b\"]\n\
         [routes.one]\ncandidates = [\"a\"]\nstrategy = \"fastest\"\n\
         [routes.off]\ncandidates = [\"a\", \"b\"]\nstrategy = \"weighted\"\nweights = [1, 1]\naffinity = false\n\
         [routes.on]\ncandidates = [\"a\", \"b\"]\naffinity = true\n"
    ))
    .unwrap();
    assert_eq!(c.affinity_idle, std::time::Duration::from_secs(1800));
    let catalog = crate::app::build_catalog(&c).unwrap();
    let on = |r: &str| catalog.route(r).unwrap().affinity;
    assert!(on("cheap") && on("on"));
    assert!(!on("ordered") && !on("one") && !on("off"));
    let c = parse(&format!("{BASE}[router]\naffinity_idle = \"5m\"\n")).unwrap();
    assert_eq!(c.affinity_idle, std::time::Duration::from_secs(300));
}

#[test]
fn models_get_built_in_facts_unless_configured() {
    let c = parse(&format!(
        "{BASE}[models.\"claude-sonnet-4-5\"]\nprovider = \"ant\"\n\
         [models.custom]\nprovider = \"oai\"\ncontext_window = 32000\nmax_output_tokens = 1000\ncapabilities = [\"vision\"]\n\
         [routes.auto]\ncandidates = [\"a\", \"b\"]\nstrategy = \"weighted\"\nweights = [2, 1]\n"
    ))
    .unwrap();
    let claude = &c.models["claude-sonnet-4-5"];
    assert_eq!(
        (claude.context_window, claude.max_output_tokens),
        (200_000, 64_000)
    );
    assert!(claude.capabilities.vision && claude.capabilities.tools);
    let custom = &c.models["custom"];
    assert_eq!(
        (custom.context_window, custom.max_output_tokens),
        (32_000, 1000)
    );
    assert_eq!(custom.capabilities.names(), ["vision"]);
    let auto = &c.routes["auto"];
    assert_eq!(auto.strategy, router::route::Strategy::Weighted(vec![2, 1]));
    assert_eq!(auto.max_attempts, super::routes::DEFAULT_MAX_ATTEMPTS);
}

#[test]
fn redis_is_optional_and_checked_when_set() {
    // Unset, or empty through `${REDIS_URL:-}`: counts stay in process.
    assert!(parse(BASE).unwrap().redis.is_none());
    let c = parse(&format!("{BASE}[redis]\nurl = \"${{NO_SUCH_VAR:-}}\"\n")).unwrap();
    assert!(c.redis.is_none());
    let c = parse(&format!(
        "{BASE}[redis]\nurl = \"redis://:pw@127.0.0.1:6379/2\"\non_failure = \"closed\"\nlease = \"10s\"\n"
    ))
    .unwrap();
    let r = c.redis.unwrap();
    assert_eq!(r.on_failure, billing::quota::FailureMode::Closed);
    assert_eq!(r.prefix, "tollgate");
    assert_eq!(r.timeout, std::time::Duration::from_millis(250));
    assert_eq!(r.lease, std::time::Duration::from_secs(10));
    assert!(!format!("{r:?}").contains("pw"), "the URL is a secret");
    let p = problems(&format!(
        "{BASE}[redis]\nurl = \"http://127.0.0.1:6379\"\non_failure = \"maybe\"\nprefix = \"\"\nlease = \"500ms\"\n"
    ));
    let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "redis.url",
            "redis.on_failure",
            "redis.prefix",
            "redis.lease"
        ],
        "{p:?}"
    );
}

#[test]
fn a_redis_cluster_is_named_by_its_nodes_in_database_0() {
    use billing::quota::RedisMode;
    let single = parse(&format!("{BASE}[redis]\nurl = \"redis://h:6379\"\n")).unwrap();
    assert_eq!(single.redis.unwrap().mode, RedisMode::Single);
    // A configuration endpoint, or several seed nodes.
    for url in [
        "redis://:pw@clustercfg.example:6379",
        "redis://:pw@10.0.0.1:6379,redis://:pw@10.0.0.2:6379/0",
    ] {
        let c = parse(&format!(
            "{BASE}[redis]\nurl = \"{url}\"\nmode = \"cluster\"\n"
        ))
        .unwrap();
        let r = c.redis.unwrap();
        assert_eq!(r.mode, RedisMode::Cluster);
        assert!(!format!("{r:?}").contains("pw"), "the URL is a secret");
    }
    let cases = [
        (
            "redis://a:6379,redis://b:6379",
            "single",
            "redis.url",
            "redis.mode = \"cluster\"",
        ),
        (
            "redis://a:6379/2",
            "cluster",
            "redis.url",
            "only database 0",
        ),
        (
            "redis://a:6379,http://b:6379",
            "cluster",
            "redis.url",
            "comma-separated",
        ),
        ("redis://a:6379", "sharded", "redis.mode", "neither"),
    ];
    for (url, mode, key, says) in cases {
        let p = problems(&format!(
            "{BASE}[redis]\nurl = \"{url}\"\nmode = \"{mode}\"\n"
        ));
        assert_eq!(p.len(), 1, "{url} {mode}: {p:?}");
        assert_eq!(p[0].0, key, "{p:?}");
        assert!(p[0].1.contains(says), "{p:?}");
    }
    let p = problems(&format!(
        "{BASE}[redis]\nurl = \"redis://a:6379\"\nprefix = \"{{tollgate}}\"\n"
    ));
    assert_eq!(p[0].0, "redis.prefix", "{p:?}");
    assert!(p[0].1.contains("hash tag"), "{p:?}");
}

#[test]
fn ledger_retention_is_for_postgres_and_keeps_everything_by_default() {
    let base = "[server]\nmaster_key = \"12345678\"\n";
    let c = parse(base).unwrap();
    assert_eq!(c.ledger.retention_months, None, "every month is kept");
    let pg = format!(
        "{base}[database]\nurl = \"postgres://tg@db/tollgate\"\n[ledger]\nretention_months = 13\n"
    );
    assert_eq!(parse(&pg).unwrap().ledger.retention_months, Some(13));
    let p = problems(&format!("{base}[ledger]\nretention_months = 13\n"));
    assert_eq!(p[0].0, "ledger.retention_months");
    assert!(p[0].1.contains("needs Postgres"), "{p:?}");
    let p = problems(&format!(
        "{base}[database]\nurl = \"postgres://tg@db/tollgate\"\n[ledger]\nretention_months = 0\n"
    ));
    assert_eq!(p[0].0, "ledger.retention_months");
    assert!(p[0].1.contains("at least 1"), "{p:?}");
}

#[test]
fn connection_limits_have_defaults_and_can_be_set() {
    let c = parse(EXAMPLE).unwrap();
    assert_eq!(c.server.connections, ConnectionLimits::default());
    assert_eq!(
        c.server.connections.header_read_timeout,
        DEFAULT_HEADER_READ_TIMEOUT
    );
    assert_eq!(
        c.server.connections.max_connections,
        DEFAULT_MAX_CONNECTIONS
    );
    let c = parse(
        "[server]\nmaster_key = \"12345678\"\nheader_read_timeout = \"2s\"\nbody_read_timeout = \"45s\"\n\
         idle_timeout = \"5m\"\nwrite_timeout = \"500ms\"\nmax_connections = 64\n",
    )
    .unwrap();
    assert_eq!(
        c.server.connections,
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(2),
            body_read_timeout: Duration::from_secs(45),
            idle_timeout: Duration::from_secs(300),
            write_timeout: Duration::from_millis(500),
            max_connections: 64,
        }
    );
}

#[test]
fn connection_limits_must_be_positive() {
    let p = problems(
        "[server]\nmaster_key = \"12345678\"\nheader_read_timeout = \"0s\"\nbody_read_timeout = \"soon\"\n\
         idle_timeout = \"0ms\"\nwrite_timeout = \"-1s\"\nmax_connections = 0\n",
    );
    for key in [
        "server.header_read_timeout",
        "server.body_read_timeout",
        "server.idle_timeout",
        "server.write_timeout",
        "server.max_connections",
    ] {
        assert!(p.iter().any(|(k, _)| k == key), "missing {key} in {p:?}");
    }
    let p = problems("[server]\nmaster_key = \"12345678\"\nmax_connections = 5000000000\n");
    assert_eq!(p[0].0, "server.max_connections");
}

#[test]
fn weak_master_keys_are_refused_beyond_loopback_and_flagged_on_it() {
    for (key, why) in [
        ("tollgate-dev-key", "publicly known"),
        ("PASSWORD", "publicly known"),
        ("12345678", "publicly known"),
        ("changeme", "publicly known"),
        ("short-key-x9", "short"),
        ("aaaaaaaaaaaaaaaaaaaaaaaa", "low in entropy"),
        ("abababababababababababab", "low in entropy"),
    ] {
        let text = format!("[server]\nlisten = \"0.0.0.0:8080\"\nmaster_key = \"{key}\"\n");
        let p = problems(&text);
        assert_eq!(p.len(), 1, "{key}: {p:?}");
        assert_eq!(p[0].0, "server.master_key");
        assert!(p[0].1.contains(why), "{key}: {p:?}");
        assert!(p[0].1.contains("openssl rand"), "the fix is printed: {p:?}");
        // On loopback it starts, flagged.
        let text = format!("[server]\nlisten = \"127.0.0.1:8080\"\nmaster_key = \"{key}\"\n");
        let c = parse(&text).unwrap();
        assert!(c
            .server
            .weak_master_key
            .as_deref()
            .is_some_and(|w| w.contains(why)));
        assert!(crate::check::describe(&c).contains("WARNING"));
    }
    for strong in [
        "0f3b9c2e7a41d8856b1e0c9d4f7a2b63",
        "helm-suite-master-key",
        "Xk9#mQ2$vL7pR4wN",
    ] {
        let text = format!("[server]\nlisten = \"[::]:8080\"\nmaster_key = \"{strong}\"\n");
        let c = parse(&text).unwrap();
        assert_eq!(c.server.weak_master_key, None, "{strong}");
        assert!(!crate::check::describe(&c).contains("WARNING"));
    }
}

#[test]
fn check_config_lists_routes_and_router_settings() {
    let text = r#"
[server]
listen = "127.0.0.1:8080"
master_key = "0f3b9c2e7a41d8856b1e0c9d4f7a2b63"
[providers.p]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
[models.a]
provider = "p"
input_per_mtok = 1.0
output_per_mtok = 2.0
[models.b]
provider = "p"
input_per_mtok = 2.0
output_per_mtok = 4.0
[routes.cheap]
candidates = ["a", "b"]
strategy = "cheapest"
reference_model = "b"
[routes.first]
candidates = ["a", "b"]
[routes.pinned]
candidates = ["b", "a"]
strategy = "weighted"
weights = [3, 1]
affinity = false
[router]
affinity_idle = "10m"
"#;
    let text = crate::check::describe(&parse(text).unwrap());
    for line in [
        "routes (3)",
        "  cheap: cheapest of [a, b]; at most ",
        "; affinity on (default)",
        "    savings against b",
        "  first: ordered of [a, b]; at most ",
        "; affinity off (default)",
        "  pinned: weighted 3/1 of [b, a]; at most ",
        "; affinity off\n",
        "  affinity_idle   10m",
    ] {
        assert!(text.contains(line), "{line:?} is not in:\n{text}");
    }
}
