//! `tollgate check-config` and config errors at start.

use crate::process::tollgate;

fn write(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("tollgate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_config_prints_the_resolved_config_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        r#"
[server]
master_key = "${TEST_MASTER}"
[providers.kimi]
kind = "openai"
base_url = "https://api.moonshot.ai/v1"
api_key = "${TEST_MOONSHOT_KEY}"
timeouts = { idle = "45s" }
[providers.demo]
kind = "mock"
[models."kimi-k2.5"]
provider = "kimi"
[models.demo]
provider = "demo"
"#,
    );
    let out = tollgate()
        .args(["check-config", "--config"])
        .arg(&path)
        .env("TEST_MASTER", "master-secret-value")
        .env("TEST_MOONSHOT_KEY", "sk-moonshot-very-secret")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    for want in [
        "kimi: kind=openai base_url=https://api.moonshot.ai/v1 api_key=*** (set) responses=false",
        "idle=45s",
        "kimi-k2.5 -> kimi / kimi-k2.5",
        "demo: kind=mock",
        "connections     max 10000; timeouts: header_read=10s body_read=1m idle=1m 15s write=30s",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in\n{stdout}");
    }
    for secret in ["sk-moonshot-very-secret", "master-secret-value"] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} leaked"
        );
    }
}

#[test]
fn check_config_fails_naming_the_file_the_key_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "[server]\nmaster_key = \"12345678\"\n[providers.x]\nkind = \"openai\"\nbase_url = \"ftp://nope\"\n");
    let out = tollgate()
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(stderr.contains("providers.x.base_url"), "{stderr}");
    assert!(
        stderr.contains("not an http:// or https:// URL"),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_to_start_on_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "[server]\nmaster_key = \"${SURELY_UNSET_VARIABLE_42}\"\n",
    );
    let out = tollgate()
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "server.master_key: environment variable SURELY_UNSET_VARIABLE_42 is not set"
        ),
        "{stderr}"
    );
    let missing = tollgate()
        .args(["check-config", "--config", "/nonexistent/tollgate.toml"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read the file"));
}
