//! Venue presets: the configs in `examples/venues/`, embedded in the binary so that
//! `wsrec init NAME` works on a box that has only the binary. A preset is a normal
//! config: print it, edit its topics, run it.

use crate::error::Fatal;
use crate::exit_codes::Exit;

/// Every preset: name, and the config file's text.
const PRESETS: &[(&str, &str)] = &[
    ("bybit", include_str!("../examples/venues/bybit.json")),
    ("binance", include_str!("../examples/venues/binance.json")),
    (
        "binance-futures",
        include_str!("../examples/venues/binance-futures.json"),
    ),
    ("okx", include_str!("../examples/venues/okx.json")),
    ("coinbase", include_str!("../examples/venues/coinbase.json")),
    ("kraken", include_str!("../examples/venues/kraken.json")),
    ("deribit", include_str!("../examples/venues/deribit.json")),
    ("bitmex", include_str!("../examples/venues/bitmex.json")),
    ("htx", include_str!("../examples/venues/htx.json")),
    ("bitget", include_str!("../examples/venues/bitget.json")),
    ("gate", include_str!("../examples/venues/gate.json")),
    ("kucoin", include_str!("../examples/venues/kucoin.json")),
    ("bitfinex", include_str!("../examples/venues/bitfinex.json")),
    (
        "hyperliquid",
        include_str!("../examples/venues/hyperliquid.json"),
    ),
    (
        "jetstream",
        include_str!("../examples/venues/jetstream.json"),
    ),
    ("mempool", include_str!("../examples/venues/mempool.json")),
    ("nostr", include_str!("../examples/venues/nostr.json")),
];

/// `wsrec init`: lists the presets, one line each; `wsrec init NAME` prints one.
pub(crate) fn run(name: Option<&str>) -> Result<u8, Fatal> {
    match name {
        None => {
            for (name, text) in PRESETS {
                println!("{name:<16} {}", summary(text));
            }
            Ok(Exit::Success.into())
        }
        Some(name) => match PRESETS.iter().find(|(n, _)| *n == name) {
            Some((_, text)) => {
                print!("{text}");
                Ok(Exit::Success.into())
            }
            None => {
                let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
                Err(Fatal::Usage(format!(
                    "init: no preset \"{name}\" (presets: {})",
                    names.join(", ")
                )))
            }
        },
    }
}

/// "Venue: what it records", from the preset's `about`.
fn summary(text: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let about = &v["about"];
    format!(
        "{}: {}",
        about["venue"].as_str().unwrap_or("?"),
        about["records"].as_str().unwrap_or("?")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn every_preset_is_a_valid_config_and_every_file_is_a_preset() {
        let mut files: Vec<String> =
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/venues"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter_map(|f| f.strip_suffix(".json").map(str::to_string))
                .collect();
        files.sort();
        let mut names: Vec<String> = PRESETS.iter().map(|(n, _)| n.to_string()).collect();
        names.sort();
        assert_eq!(files, names);
        for (name, text) in PRESETS {
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            assert!(v["about"]["docs"].is_string(), "{name}: about.docs");
            let c = Config::for_test(v);
            assert!(!c.messages.topics.is_empty(), "{name}");
            assert!(!summary(text).contains('?'), "{name}: {}", summary(text));
        }
    }
}
