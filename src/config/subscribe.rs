//! The subscribe messages: the configured template expanded for the topics.

/// Expands `{topic}` / `{topics}` in the subscribe template into the messages to send.
///
/// `{topics}` becomes the topics as JSON string items (`"a","b"`), split into groups of
/// `per_message` (0 = one message for all). `{topic}` with several topics sends one
/// message per topic, as does `{topic.N}`: part N of the topic split by the route
/// separator (`sep`) into as many parts as the template uses (the last part keeps
/// the rest, separators included), so that object
/// arguments can be built from a topic such as `trades.BTC-USDT`. A template with none
/// of these is sent once, as it is.
pub(crate) fn expand(
    template: &str,
    topics: &[String],
    per_message: usize,
    sep: &str,
) -> Vec<String> {
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
    } else if template.contains("{topic}") || template.contains("{topic.") {
        // Inside a JSON string the topic must be escaped but not quoted again.
        let escape = |t: &str| {
            let q = serde_json::to_string(t).unwrap_or_default();
            q[1..q.len() - 1].to_string()
        };
        topics
            .iter()
            .map(|t| {
                let mut m = template.replace("{topic}", &escape(t));
                let n = (0..10)
                    .rev()
                    .find(|i| template.contains(&format!("{{topic.{i}}}")))
                    .map_or(1, |i| i + 1);
                if !sep.is_empty() {
                    for (i, part) in t.splitn(n, sep).enumerate() {
                        m = m.replace(&format!("{{topic.{i}}}"), &escape(part));
                    }
                }
                m
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
        let m = expand(r#"{"args":[{topics}]}"#, &t, 2, ".");
        assert_eq!(m, vec![r#"{"args":["a","b"]}"#, r#"{"args":["c"]}"#]);
        let m = expand(r#"{"args":["{topic}"]}"#, &t[..1], 0, ".");
        assert_eq!(m, vec![r#"{"args":["a"]}"#]);
        assert_eq!(expand("{}", &t, 0, "."), vec!["{}"]);
        assert!(expand("", &t, 0, ".").is_empty());
        let okx = vec![
            "trades.BTC-USDT".to_string(),
            "bbo-tbt.ETH-USDT".to_string(),
        ];
        let m = expand(
            r#"{"op":"subscribe","args":[{"channel":"{topic.0}","instId":"{topic.1}"}]}"#,
            &okx,
            0,
            ".",
        );
        assert_eq!(
            m,
            vec![
                r#"{"op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"}]}"#,
                r#"{"op":"subscribe","args":[{"channel":"bbo-tbt","instId":"ETH-USDT"}]}"#
            ]
        );
    }
}
