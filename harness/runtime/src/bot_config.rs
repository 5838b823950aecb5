//! Reading and rewriting the `BOT_CONFIG` JSON a container carries in its `Env`.
//!
//! Kept as loose JSON on purpose: the runtime must pass through whatever the service sent,
//! and only ever touches `connectionId`.

use serde_json::Value;

pub(crate) const VAR: &str = "BOT_CONFIG";
const CONNECTION_ID: &str = "connectionId";

/// The last `BOT_CONFIG=` entry, as Docker's "later wins".
fn raw(env: &[String]) -> Option<&str> {
    env.iter()
        .rev()
        .find_map(|entry| entry.strip_prefix(VAR)?.strip_prefix('='))
}

/// The parsed `BOT_CONFIG` object, when there is one.
pub(crate) fn parse(env: &[String]) -> Option<serde_json::Map<String, Value>> {
    match serde_json::from_str(raw(env)?) {
        Ok(Value::Object(object)) => Some(object),
        _ => None,
    }
}

pub(crate) fn connection_id(env: &[String]) -> Option<String> {
    parse(env)?.get(CONNECTION_ID)?.as_str().map(str::to_owned)
}

/// `env` with `BOT_CONFIG.connectionId` replaced by `uid`; the error says what is missing.
pub(crate) fn with_connection_id(env: &[String], uid: &str) -> Result<Vec<String>, String> {
    let Some(text) = raw(env) else {
        return Err(format!("the container has no {VAR} in its Env"));
    };
    let mut object = match serde_json::from_str(text) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return Err(format!("the container's {VAR} is not a JSON object")),
        Err(err) => return Err(format!("the container's {VAR} is not valid JSON: {err}")),
    };
    object.insert(CONNECTION_ID.into(), Value::String(uid.into()));
    let mut env = env.to_vec();
    if let Some(index) = env
        .iter()
        .rposition(|entry| raw(std::slice::from_ref(entry)).is_some())
    {
        env[index] = format!("{VAR}={}", Value::Object(object));
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_id_rewrite_keeps_other_keys_and_entries() {
        let env = vec![
            "A=1".to_owned(),
            r#"BOT_CONFIG={"connectionId":"old","meeting_id":7}"#.to_owned(),
        ];
        let rewritten = with_connection_id(&env, "new").unwrap();
        assert_eq!(rewritten[0], "A=1");
        assert_eq!(connection_id(&rewritten).as_deref(), Some("new"));
        assert_eq!(parse(&rewritten).unwrap()["meeting_id"], 7);
    }

    #[test]
    fn rewrite_without_bot_config_says_so() {
        let err = with_connection_id(&["A=1".to_owned()], "x").unwrap_err();
        assert!(err.contains("no BOT_CONFIG"), "{err}");
        let err = with_connection_id(&["BOT_CONFIG=[1]".to_owned()], "x").unwrap_err();
        assert!(err.contains("not a JSON object"), "{err}");
    }
}
