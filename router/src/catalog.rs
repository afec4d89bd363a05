//! The model catalog: the names clients send as `model`, each resolved to a
//! provider and the model name that provider expects.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::price::Price;
use crate::provider::Provider;
use crate::route::Route;

/// One model clients can ask for.
#[derive(Debug)]
pub struct ModelEntry {
    /// The name clients send as `model`.
    pub name: String,
    /// The provider that serves it.
    pub provider: Arc<Provider>,
    /// The model name sent upstream.
    pub upstream_model: String,
    /// The most output tokens the model can produce (fills a required
    /// `max_tokens` the client left out).
    pub max_output_tokens: u64,
    /// Prompt and output tokens together.
    pub context_window: u64,
    /// What the model can do.
    pub capabilities: Capabilities,
    /// Recent health: circuit breaker, cooldown, observed speed.
    pub health: crate::route::Health,
    /// Its price; `None` when none is known (billing then charges its default).
    pub price: Option<Price>,
}

/// What a model can do, beyond plain text chat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Function / tool calling.
    pub tools: bool,
    /// Image inputs.
    pub vision: bool,
    /// `response_format` with a JSON schema.
    pub json_schema: bool,
    /// Reasoning (thinking) output.
    pub reasoning: bool,
    /// A vendor prompt cache (cheaper repeated prefixes).
    pub prompt_cache: bool,
}

impl Capabilities {
    /// Every capability name, as written in config.
    pub const NAMES: [&'static str; 5] = [
        "tools",
        "vision",
        "json_schema",
        "reasoning",
        "prompt_cache",
    ];

    /// Parses config names; `Err` names the first unknown one.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut c = Self::default();
        for n in names {
            match n {
                "tools" => c.tools = true,
                "vision" => c.vision = true,
                "json_schema" => c.json_schema = true,
                "reasoning" => c.reasoning = true,
                "prompt_cache" => c.prompt_cache = true,
                other => return Err(other.to_owned()),
            }
        }
        Ok(c)
    }

    /// The capability names set, in [`Self::NAMES`] order.
    pub fn names(&self) -> Vec<&'static str> {
        let set = [
            self.tools,
            self.vision,
            self.json_schema,
            self.reasoning,
            self.prompt_cache,
        ];
        Self::NAMES
            .iter()
            .zip(set)
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect()
    }
}

/// The built-in facts about a model family: context window, output limit
/// and capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelFacts {
    /// Prompt and output tokens together.
    pub context_window: u64,
    /// The most output tokens one answer may have.
    pub max_output_tokens: u64,
    /// What it can do.
    pub capabilities: Capabilities,
}

const fn caps(
    tools: bool,
    vision: bool,
    json_schema: bool,
    reasoning: bool,
    prompt_cache: bool,
) -> Capabilities {
    Capabilities {
        tools,
        vision,
        json_schema,
        reasoning,
        prompt_cache,
    }
}

/// Built-in facts by upstream model name prefix (first match wins). From the
/// vendors' published limits (see PROVIDERS.md).
const KNOWN: &[(&str, u64, u64, Capabilities)] = &[
    (
        "claude-opus-4-5",
        200_000,
        64_000,
        caps(true, true, true, true, true),
    ),
    (
        "claude-opus-4",
        200_000,
        32_000,
        caps(true, true, true, true, true),
    ),
    (
        "claude-sonnet-4",
        200_000,
        64_000,
        caps(true, true, true, true, true),
    ),
    (
        "claude-haiku-4",
        200_000,
        64_000,
        caps(true, true, true, true, true),
    ),
    (
        "claude-3-7-sonnet",
        200_000,
        64_000,
        caps(true, true, false, true, true),
    ),
    (
        "claude-3-5",
        200_000,
        8_192,
        caps(true, true, false, false, true),
    ),
    (
        "claude-3",
        200_000,
        4_096,
        caps(true, true, false, false, true),
    ),
    (
        "deepseek-reasoner",
        128_000,
        64_000,
        caps(true, false, false, true, true),
    ),
    (
        "deepseek-chat",
        128_000,
        8_192,
        caps(true, false, true, false, true),
    ),
    (
        "kimi-k2",
        256_000,
        32_768,
        caps(true, false, true, true, true),
    ),
    (
        "glm-4.5v",
        64_000,
        16_384,
        caps(true, true, false, true, true),
    ),
    (
        "glm-4",
        200_000,
        32_768,
        caps(true, false, true, true, true),
    ),
    (
        "minimax-m2",
        204_800,
        65_536,
        caps(true, false, false, true, true),
    ),
];

/// The facts for a model by its upstream name. Unknown models get a 128k
/// context, 8,192 output tokens and `tools` only: a configured model can say
/// more with `context_window`, `max_output_tokens` and `capabilities`.
pub fn model_facts(upstream_model: &str) -> ModelFacts {
    let m = upstream_model.to_ascii_lowercase();
    KNOWN
        .iter()
        .find(|(prefix, ..)| m.starts_with(prefix))
        .map(
            |&(_, context_window, max_output_tokens, capabilities)| ModelFacts {
                context_window,
                max_output_tokens,
                capabilities,
            },
        )
        .unwrap_or(ModelFacts {
            context_window: 128_000,
            max_output_tokens: 8_192,
            capabilities: caps(true, false, false, false, false),
        })
}

/// Every model and route Tollgate serves, by client-facing name.
#[derive(Debug, Default)]
pub struct Catalog {
    models: BTreeMap<String, Arc<ModelEntry>>,
    routes: BTreeMap<String, Arc<Route>>,
}

impl Catalog {
    /// Builds the catalog from shared entries and configured routes.
    pub fn with_routes(entries: Vec<Arc<ModelEntry>>, routes: Vec<Route>) -> Self {
        let mut out = Self::default();
        for e in entries {
            out.routes
                .insert(e.name.clone(), Arc::new(Route::single(e.clone())));
            out.models.insert(e.name.clone(), e);
        }
        for r in routes {
            out.routes.insert(r.name.clone(), Arc::new(r));
        }
        out
    }

    /// Looks a model up by the name a client sent.
    pub fn get(&self, name: &str) -> Option<&Arc<ModelEntry>> {
        self.models.get(name)
    }

    /// Looks a route (or a model, as a route of one) up by name.
    pub fn route(&self, name: &str) -> Option<&Arc<Route>> {
        self.routes.get(name)
    }

    /// The configured routes, sorted by name.
    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.routes.values().filter(|r| r.filter)
    }

    /// All models, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<ModelEntry>> {
        self.models.values()
    }

    /// How many models there are.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// Whether the catalog is empty.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}
