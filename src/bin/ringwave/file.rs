//! `--config FILE`: a TOML file whose keys are the long options' names.
//! Its options go on the command line ahead of the real ones, except those
//! the command line gives itself: flags override the file, a repeatable
//! option given on the command line replaces the file's list.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use clap::{ArgAction, ArgMatches, CommandFactory as _};

use crate::cli::Cli;

/// Options a config file cannot hold: they say where the file is, or are
/// not settings.
const NOT_IN_FILE: [&str; 4] = ["config", "check-config", "help", "version"];

/// Options shown as set or not, never by value.
const SECRETS: [&str; 6] = [
    "token",
    "metrics-token",
    "publish-token",
    "api-token",
    "nats-token",
    "nats-password",
];

/// The options in effect: the file's (if any) and the command line's.
pub struct Merged {
    /// The file named by `--config` or `--check-config`.
    pub path: Option<PathBuf>,
    /// The arguments clap parses: the program name, the file's options,
    /// then the command line's.
    pub argv: Vec<OsString>,
    /// The options that came from the file.
    pub from_file: BTreeSet<String>,
}

/// The long options the command line sets itself (`--name` or
/// `--name=value`), up to a `--`.
fn given(args: &[OsString]) -> BTreeSet<String> {
    args.iter()
        .skip(1)
        .map(|a| a.to_string_lossy())
        .take_while(|a| a != "--")
        .filter_map(|a| {
            let name = a.strip_prefix("--")?;
            Some(name.split('=').next().unwrap_or(name).to_string())
        })
        .collect()
}

/// The value of `--config`/`--check-config` on the command line.
fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        for name in ["--config", "--check-config"] {
            if a == name {
                return it.next().map(PathBuf::from);
            }
            if let Some(v) = a.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
                return Some(PathBuf::from(v));
            }
        }
    }
    None
}

/// The arguments of `args` (the command line, program name first) with
/// the options of the file it names put before them.
pub fn merge(args: &[OsString]) -> Result<Merged, String> {
    let Some(path) = config_path(args) else {
        return Ok(Merged {
            path: None,
            argv: args.to_vec(),
            from_file: BTreeSet::new(),
        });
    };
    let on_line = given(args);
    let mut argv = args[..1.min(args.len())].to_vec();
    let mut from_file = BTreeSet::new();
    for (key, values) in read(&path)? {
        if on_line.contains(&key) {
            continue;
        }
        for v in values {
            argv.push(v);
        }
        from_file.insert(key);
    }
    argv.extend(args.iter().skip(1).cloned());
    Ok(Merged {
        path: Some(path),
        argv,
        from_file,
    })
}

/// The file's options as arguments, by key, each value checked by the
/// option's own parser.
fn read(path: &Path) -> Result<Vec<(String, Vec<OsString>)>, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| format!("{shown}: {}", e.to_string().trim_end()))?;
    let cmd = Cli::command();
    let names: Vec<&str> = cmd
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| !NOT_IN_FILE.contains(l))
        .collect();
    let mut out = Vec::new();
    for (key, value) in &table {
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && !NOT_IN_FILE.contains(&key.as_str()));
        let Some(arg) = arg else {
            return Err(format!(
                "{shown}: unknown key `{key}`{}",
                suggest(key, &names)
            ));
        };
        let bad = |what: &str| format!("{shown}: `{key}` {what}");
        let flag = matches!(arg.get_action(), ArgAction::SetTrue);
        let repeatable = matches!(arg.get_action(), ArgAction::Append);
        let scalars: Vec<&toml::Value> = match value {
            toml::Value::Boolean(b) if flag => {
                out.push((
                    key.clone(),
                    if *b {
                        vec![format!("--{key}").into()]
                    } else {
                        vec![]
                    },
                ));
                continue;
            }
            _ if flag => return Err(bad("is a flag: true or false")),
            toml::Value::Boolean(_) => return Err(bad("takes a value, not true or false")),
            toml::Value::Array(items) if repeatable => items.iter().collect(),
            toml::Value::Array(_) => return Err(bad("takes one value, not a list")),
            toml::Value::Table(_) => return Err(bad("takes a value, not a table")),
            v => vec![v],
        };
        let mut values = Vec::new();
        for v in scalars {
            let text = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Datetime(d) => d.to_string(),
                _ => return Err(bad("holds a list item that is not a string or a number")),
            };
            // The option's own check, so that the error names the key.
            let check = clap::Command::new("ringwave").arg(
                clap::Arg::new("value")
                    .long("value")
                    .value_names(arg.get_value_names().unwrap_or_default().to_vec())
                    .value_parser(arg.get_value_parser().clone()),
            );
            if let Err(e) = check.try_get_matches_from(["ringwave", &format!("--value={text}")]) {
                let e = e.to_string().replace("--value", &format!("--{key}"));
                let why = e.lines().next().unwrap_or(&e).trim_start_matches("error: ");
                return Err(format!("{shown}: {why}"));
            }
            values.push(format!("--{key}={text}").into());
        }
        out.push((key.clone(), values));
    }
    Ok(out)
}

/// A warning when the file holds a secret and every user may read it.
pub fn exposed_secrets(merged: &Merged) -> Option<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = merged.path.as_ref()?;
    let secrets: Vec<&str> = SECRETS
        .iter()
        .copied()
        .filter(|k| merged.from_file.contains(*k))
        .collect();
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (!secrets.is_empty() && mode & 0o004 != 0).then(|| {
        format!(
            "{} holds {} and every user may read it: chmod o-r {}",
            path.display(),
            secrets.join(", "),
            path.display()
        )
    })
}

/// ", did you mean `x`?" for the option name nearest to `key`, if any is
/// near.
fn suggest(key: &str, names: &[&str]) -> String {
    let key = key.replace('_', "-");
    names
        .iter()
        .map(|n| (strsim::jaro_winkler(&key, n), *n))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map_or_else(
            || " (the keys are the long options of `ringwave --help`)".to_string(),
            |(_, n)| format!(": did you mean `{n}`?"),
        )
}

/// Each option clap knows, with how `matches` has it as TOML (`None`: not
/// set; secrets as "(set)").
pub fn settings(matches: &ArgMatches) -> Vec<(String, Option<String>)> {
    let cmd = Cli::command();
    let mut out = Vec::new();
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if NOT_IN_FILE.contains(&long) {
            continue;
        }
        let raw: Option<Vec<String>> = matches
            .get_raw(arg.get_id().as_str())
            .map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect());
        let shown = raw.map(|values| {
            if SECRETS.contains(&long) {
                return "(set)".to_string();
            }
            let one = |s: &String| match s.parse::<i64>() {
                Ok(i) if !s.starts_with('+') => i.to_string(),
                _ => toml::Value::String(s.clone()).to_string(),
            };
            match arg.get_action() {
                ArgAction::SetTrue => values.first().cloned().unwrap_or_default(),
                ArgAction::Append => {
                    let items: Vec<String> = values.iter().map(one).collect();
                    format!("[{}]", items.join(", "))
                }
                _ => values.first().map(one).unwrap_or_default(),
            }
        });
        out.push((long.to_string(), shown));
    }
    out
}

/// Where `key`'s value comes from.
pub fn source(matches: &ArgMatches, merged: &Merged, key: &str) -> &'static str {
    if merged.from_file.contains(key) {
        return "file";
    }
    let cmd = Cli::command();
    let id = cmd
        .get_arguments()
        .find(|a| a.get_long() == Some(key))
        .map(|a| a.get_id().as_str().to_string());
    match id.and_then(|id| matches.value_source(&id)) {
        Some(clap::parser::ValueSource::CommandLine) => "command line",
        Some(clap::parser::ValueSource::EnvVariable) => "environment",
        Some(_) => "default",
        None => "not set",
    }
}

/// The settings in effect as a TOML file, each line with where it comes
/// from; those not set are commented out.
pub fn render(matches: &ArgMatches, merged: &Merged) -> String {
    let mut text = String::new();
    for (key, value) in settings(matches) {
        let from = source(matches, merged, &key);
        match value {
            Some(v) if v == "(set)" => {
                text.push_str(&format!("# {key} = (set, not shown)  # {from}\n"))
            }
            Some(v) => text.push_str(&format!("{key} = {v}  # {from}\n")),
            None => text.push_str(&format!("# {key}  # not set\n")),
        }
    }
    text
}

/// The options whose values differ between `old` and `new`: the key, and
/// each side as [`settings`] shows it (a secret as "(set)" on both).
pub fn changes(old: &ArgMatches, new: &ArgMatches) -> Vec<(String, String, String)> {
    let cmd = Cli::command();
    let raw = |m: &ArgMatches, id: &str| -> Option<Vec<OsString>> {
        m.get_raw(id).map(|v| v.map(OsStr::to_os_string).collect())
    };
    let (before, after) = (settings(old), settings(new));
    let mut out = Vec::new();
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        let id = arg.get_id().as_str();
        if NOT_IN_FILE.contains(&long) || raw(old, id) == raw(new, id) {
            continue;
        }
        let shown = |s: &[(String, Option<String>)]| {
            s.iter()
                .find(|(k, _)| k == long)
                .and_then(|(_, v)| v.clone())
                .unwrap_or_else(|| "(not set)".to_string())
        };
        out.push((long.to_string(), shown(&before), shown(&after)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_near_miss_is_suggested() {
        let names = ["max-message", "max-frame", "listen"];
        assert_eq!(
            suggest("max_message", &names),
            ": did you mean `max-message`?"
        );
        assert_eq!(
            suggest("maxmesage", &names),
            ": did you mean `max-message`?"
        );
        assert!(suggest("zzz", &names).contains("ringwave --help"));
    }

    #[test]
    fn the_command_line_names_its_options_and_the_file() {
        let args: Vec<OsString> = [
            "ringwave",
            "--config",
            "f.toml",
            "--max-message=1k",
            "--deflate",
            "--",
            "--x",
        ]
        .map(OsString::from)
        .to_vec();
        assert_eq!(config_path(&args), Some(PathBuf::from("f.toml")));
        let g = given(&args);
        assert!(g.contains("max-message") && g.contains("deflate") && !g.contains("x"));
    }
}
