//! The admin API's JSON bodies (`gateway::http::admin`): creating an
//! organization, a team or a key and patching any of them, as the handlers
//! check them, then as the tenancy store checks, writes and reads back what
//! they set (`billing::tenancy`). No panic; what is stored reads back as it
//! was written, and a key's expiry as the API shows it parses back.
//!
//! Input: `[selector] [body...]`: the selector picks the body's kind.
#![no_main]

use billing::tenancy::{self, Controls, MAX_RFC3339_MS};
use gateway::fuzzing::admin;
use gateway::policy::KnownNames;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn names() -> KnownNames {
    KnownNames {
        models: ["gpt-4o", "claude", "fast"].map(String::from).into(),
        providers: ["openai", "anthropic"].map(String::from).into(),
    }
}

/// Stores `controls` and `metadata` as creating `kind` would, and checks
/// that they read back unchanged.
fn store(kind: &str, name: Option<&str>, metadata: Option<Value>, controls: &Controls) {
    let Ok((meta, read)) = billing::fuzzing::store_and_read(kind, name, metadata.clone(), controls)
    else {
        return;
    };
    assert_eq!(&read, controls, "stored controls read back changed");
    assert!(meta.is_object(), "stored metadata is not an object");
    if let Some(m @ Value::Object(_)) = &metadata {
        // Numbers may come back a float's last bit off (serde_json's
        // default float parsing is not exact): compare the keys.
        let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>());
        assert_eq!(keys(&meta), keys(m), "stored metadata read back changed");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&s, body)) = data.split_first() else {
        return;
    };
    let names = names();
    match s % 4 {
        0 => {
            if let Ok((name, metadata, c)) = admin::new_org(&names, body) {
                store("organization", Some(&name), metadata, &c);
            }
        }
        1 => {
            if let Ok((_org, name, metadata, c)) = admin::new_team(&names, body) {
                store("team", Some(&name), metadata, &c);
            }
        }
        2 => {
            if let Ok(spec) = admin::new_key(&names, body) {
                store(
                    "key",
                    spec.name.as_deref(),
                    spec.metadata.clone(),
                    &spec.controls,
                );
                if let Some(ms) = spec.expires_at_ms {
                    let shown = tenancy::rfc3339(ms);
                    assert_eq!(
                        tenancy::parse_rfc3339(&shown),
                        Some(ms.min(MAX_RFC3339_MS)),
                        "expires_at {shown} does not parse back to {ms}"
                    );
                }
            }
        }
        _ => {
            if let Ok(patch) = admin::patch(&names, body) {
                let controls = Controls {
                    policy: patch.policy.apply(Default::default()),
                    budget: patch.budget.clone().flatten(),
                    limits: patch.limits.clone().flatten(),
                };
                store(
                    "team",
                    patch.name.as_deref(),
                    patch.metadata.clone(),
                    &controls,
                );
            }
        }
    }
});
