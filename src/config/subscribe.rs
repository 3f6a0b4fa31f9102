//! The subscribe messages: the configured template expanded for the topics.

/// Expands `{topic}` / `{topics}` in the subscribe template into the messages to send.
///
/// `{topics}` becomes the topics as JSON string items (`"a","b"`), split into groups of
/// `per_message` (0 = one message for all). `{topic}` with several topics sends one
/// message per topic. A template with neither is sent once, as it is.
pub(crate) fn expand(template: &str, topics: &[String], per_message: usize) -> Vec<String> {
    if template.is_empty() {
        return Vec::new();
    }
    let quote = |t: &String| serde_json::to_string(t).unwrap_or_default();
    if template.contains("{topics}") {
        let chunk = if per_message == 0 {
            topics.len()
        } else {
            per_message
        };
        topics
            .chunks(chunk)
            .map(|group| {
                let items: Vec<String> = group.iter().map(quote).collect();
                template.replace("{topics}", &items.join(","))
            })
            .collect()
    } else if template.contains("{topic}") {
        // Inside a JSON string the topic must be escaped but not quoted again.
        topics
            .iter()
            .map(|t| {
                let q = quote(t);
                template.replace("{topic}", &q[1..q.len() - 1])
            })
            .collect()
    } else {
        vec![template.to_string()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_expansion() {
        let t = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let m = expand(r#"{"args":[{topics}]}"#, &t, 2);
        assert_eq!(m, vec![r#"{"args":["a","b"]}"#, r#"{"args":["c"]}"#]);
        let m = expand(r#"{"args":["{topic}"]}"#, &t[..1], 0);
        assert_eq!(m, vec![r#"{"args":["a"]}"#]);
        assert_eq!(expand("{}", &t, 0), vec!["{}"]);
        assert!(expand("", &t, 0).is_empty());
    }
}
