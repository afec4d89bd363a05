//! Config loading (`gateway::Config::parse`): any text, with `${VAR}`
//! references answered by a fixed fake environment (no file, no process
//! environment). No panic, and neither a syntax error nor a problem with a
//! secret setting shows a value that came from the environment.
//!
//! Input: config text (TOML).
#![no_main]

use libfuzzer_sys::fuzz_target;

/// What every set variable holds: never to be shown in an error.
const SECRET: &str = "env-secret-7f3a";

/// The fake environment: `UNSET*` and `EMPTY*` variables are unset or empty,
/// every other is set to [`SECRET`].
fn lookup(name: &str) -> Option<String> {
    if name.starts_with("UNSET") {
        None
    } else if name.starts_with("EMPTY") {
        Some(String::new())
    } else {
        Some(SECRET.to_owned())
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match gateway::Config::parse(text, "fuzz.toml", &lookup) {
        Ok(config) => {
            let _ = format!("{config:?}");
        }
        Err(e) => {
            let _ = e.to_string();
            // Validation problems name the value they refuse (a provider's
            // name, say), also when it came from the environment; a secret
            // setting's problem and a syntax error never show it.
            if text.contains(SECRET) {
                return;
            }
            for p in &e.problems {
                let secret_key = p.key.is_empty()
                    || p.key.ends_with(".api_key")
                    || [
                        "server.master_key",
                        "database.url",
                        "redis.url",
                        "quotas.alert_webhook",
                        "metrics.token",
                    ]
                    .contains(&p.key.as_str());
                assert!(
                    !(secret_key && p.problem.contains(SECRET)),
                    "{}: a problem shows a secret from the environment: {}",
                    p.key,
                    p.problem
                );
            }
        }
    }
});
