//! `${VAR}` expansion in config strings, after parsing, so an expanded secret
//! never shows up in a TOML syntax error.
//!
//! `${VAR}` takes the variable (an error when unset), `${VAR:-default}` falls
//! back to `default` when it is unset or empty, and `$$` is a literal `$`.

/// Expands one string. `lookup` reads a variable.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| "unclosed '${' (write '$$' for a literal '$')".to_owned())?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(format!(
                    "'${{{expr}}}' is not a valid environment variable reference"
                ));
            }
            match (lookup(name).filter(|v| !v.is_empty()), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => return Err(format!("environment variable {name} is not set")),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Expands every string in a TOML tree, collecting `(key path, problem)` pairs.
pub fn expand_tree(
    value: &mut toml::Value,
    path: &mut Vec<String>,
    lookup: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<(String, String)>,
) {
    match value {
        toml::Value::String(s) => match expand(s, lookup) {
            Ok(v) => *s = v,
            Err(problem) => problems.push((path.join("."), problem)),
        },
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(format!("[{i}]"));
                expand_tree(item, path, lookup, problems);
                path.pop();
            }
        }
        toml::Value::Table(table) => {
            for (key, item) in table.iter_mut() {
                path.push(key.clone());
                expand_tree(item, path, lookup, problems);
                path.pop();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("sk-1".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_variables_defaults_and_escapes() {
        assert_eq!(expand("Bearer ${KEY}", &env).unwrap(), "Bearer sk-1");
        assert_eq!(expand("${MISSING:-dev}", &env).unwrap(), "dev");
        assert_eq!(expand("${EMPTY:-dev}", &env).unwrap(), "dev");
        assert_eq!(expand("${KEY:-dev}", &env).unwrap(), "sk-1");
        assert_eq!(expand("cost $$5 and $x", &env).unwrap(), "cost $5 and $x");
        assert_eq!(expand("plain", &env).unwrap(), "plain");
    }

    #[test]
    fn unset_and_malformed_references_are_errors() {
        assert!(expand("${MISSING}", &env)
            .unwrap_err()
            .contains("MISSING is not set"));
        assert!(expand("${KEY", &env).unwrap_err().contains("unclosed"));
        assert!(expand("${1BAD}", &env).unwrap_err().contains("not a valid"));
    }
}
