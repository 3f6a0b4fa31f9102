//! Command-line flags (argh), accepting the Go streamer's single-dash spellings.

use argh::FromArgs;

use crate::exit_codes::Exit;

/// Records a WebSocket stream, verbatim, to hourly JSONL files.
#[derive(FromArgs, Debug)]
pub(crate) struct Args {
    /// config file (default: config.json)
    #[argh(option, default = "String::from(\"config.json\")")]
    pub(crate) config: String,

    /// log to stdout at debug level, whatever the config says
    #[argh(switch)]
    pub(crate) debug: bool,

    /// print the running instance's status line and exit (0 healthy, 3 disconnected or
    /// stale, 1 no instance)
    #[argh(switch)]
    pub(crate) status: bool,

    /// with --status: print every counter as one JSON object
    #[argh(switch)]
    pub(crate) json: bool,

    /// print the version and exit (also -V)
    #[argh(switch)]
    pub(crate) version: bool,

    #[argh(subcommand)]
    /// an optional tool instead of recording
    pub(crate) command: Option<Command>,
}

/// Tools besides recording.
#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub(crate) enum Command {
    /// Gaps: print the time windows that the coverage journal does not cover.
    Gaps(GapsArgs),
    /// Init: print a venue preset's config, or list the presets.
    Init(InitArgs),
}

/// Print the config of a venue preset (`wsrec init okx > config.json`), or list them.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "init")]
pub(crate) struct InitArgs {
    /// the preset's name; none lists them
    #[argh(positional)]
    pub(crate) name: Option<String>,
}

/// Print the gaps in the recording over a time range, from coverage.jsonl.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "gaps")]
pub(crate) struct GapsArgs {
    /// start of the range: Unix seconds or RFC 3339 (default: the first session)
    #[argh(option)]
    pub(crate) from: Option<String>,
    /// end of the range: Unix seconds or RFC 3339 (default: now)
    #[argh(option)]
    pub(crate) to: Option<String>,
    /// a gap shorter than this many seconds is not reported (default 1)
    #[argh(option, default = "1.0")]
    pub(crate) min_gap: f64,
    /// print one JSON object per gap and line (start, end, seconds, kind, topic,
    /// start_ms, end_ms), without the summary
    #[argh(switch)]
    pub(crate) json: bool,
    /// print the gaps as CSV with a header line (the same columns), without the summary
    #[argh(switch)]
    pub(crate) csv: bool,
}

/// Options that take a value: the word after one is that value, never a flag.
const TAKES_VALUE: [&str; 4] = ["--config", "--from", "--to", "--min-gap"];

/// Rewrites the Go streamer's spellings (`-config x`, `-config=x`, `--config=x`) into
/// argh's, and the usual short flags `-h` and `-V` into `--help` and `--version`.
pub(crate) fn normalize(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for a in args {
        let is_value = out
            .last()
            .is_some_and(|p| TAKES_VALUE.contains(&p.as_str()));
        if !is_value && (a == "-h" || a == "-V") {
            out.push(if a == "-h" { "--help" } else { "--version" }.into());
            continue;
        }
        let long = if a.starts_with('-') && !a.starts_with("--") && a.len() > 2 {
            format!("-{a}")
        } else {
            a
        };
        match long.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                out.push(flag.to_string());
                out.push(value.to_string());
            }
            _ => out.push(long),
        }
    }
    out
}

/// Parses the process arguments; prints help or a usage error and exits as argh does
/// (0 for help, 2 for a usage error, which says `wsrec:` and where the help is).
pub(crate) fn parse() -> Args {
    let mut argv = std::env::args();
    let cmd = argv.next().unwrap_or_else(|| "wsrec".into());
    let cmd = std::path::Path::new(&cmd)
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or(cmd);
    let rest = normalize(argv);
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match Args::from_args(&[&cmd], &rest) {
        Ok(args) => args,
        Err(early) => match early.status {
            Ok(()) => {
                print!("{}", early.output);
                std::process::exit(i32::from(u8::from(Exit::Success)))
            }
            Err(()) => {
                eprintln!("{}", usage_error(&early.output, &rest));
                std::process::exit(i32::from(u8::from(Exit::Usage)))
            }
        },
    }
}

/// argh's complaint as one `wsrec:` line, with the command whose `--help` explains it.
fn usage_error(output: &str, args: &[&str]) -> String {
    let problem = output.trim();
    let mut chars = problem.chars();
    let problem = match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => "bad arguments".to_string(),
    };
    let command = match args.iter().find(|a| ["gaps", "init"].contains(a)) {
        Some(sub) => format!("wsrec {sub} --help"),
        None => "wsrec --help".to_string(),
    };
    format!("wsrec: {problem}\nwsrec: see `{command}` for the flags")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_streamer_spellings() {
        let v = |s: &[&str]| normalize(s.iter().map(|x| x.to_string()));
        assert_eq!(
            v(&["-config", "c.json", "-debug"]),
            ["--config", "c.json", "--debug"]
        );
        assert_eq!(v(&["-config=c.json"]), ["--config", "c.json"]);
        assert_eq!(
            v(&["--config=a=b.json", "-status"]),
            ["--config", "a=b.json", "--status"]
        );
        assert_eq!(v(&["-h"]), ["--help"]);
        assert_eq!(v(&["-V"]), ["--version"]);
        assert_eq!(v(&["gaps", "-h"]), ["gaps", "--help"]);
        // A value that happens to look like a short flag stays a value.
        assert_eq!(v(&["--config", "-h"]), ["--config", "-h"]);
    }

    #[test]
    fn usage_errors_name_wsrec_and_the_help() {
        assert_eq!(
            usage_error("Unrecognized argument: --bogus\n", &["--bogus"]),
            "wsrec: unrecognized argument: --bogus\nwsrec: see `wsrec --help` for the flags"
        );
        assert!(
            usage_error("x", &["gaps", "--nope"]).ends_with("`wsrec gaps --help` for the flags")
        );
    }
}
