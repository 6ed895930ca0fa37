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
                let why = crate::cli::clap_message(&e).replace("--value", &format!("--{key}"));
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

/// One option as a parse has it.
pub struct Setting {
    /// Its long name, the file's key.
    key: String,
    /// Its value as TOML; `None`: not set.
    value: Option<String>,
    /// A secret: shown as set, never by value.
    secret: bool,
    /// Where the value comes from.
    source: &'static str,
    /// What it was given as, to compare two parses by.
    raw: Option<Vec<OsString>>,
}

impl Setting {
    /// Its value as a reload's log shows it.
    fn shown(&self) -> String {
        match &self.value {
            Some(_) if self.secret => "(set)".to_string(),
            Some(v) => v.clone(),
            None => "(not set)".to_string(),
        }
    }
}

/// Every option a file may hold, in `ringwave --help`'s order, as
/// `matches` has it; `merged` tells the file's options apart.
fn settings(matches: &ArgMatches, merged: Option<&Merged>) -> Vec<Setting> {
    let cmd = Cli::command();
    let mut out = Vec::new();
    for arg in cmd.get_arguments() {
        let Some(key) = arg.get_long() else { continue };
        if NOT_IN_FILE.contains(&key) {
            continue;
        }
        let id = arg.get_id().as_str();
        let raw: Option<Vec<OsString>> = matches
            .get_raw(id)
            .map(|v| v.map(OsStr::to_os_string).collect());
        let one = |s: &OsString| {
            let s = s.to_string_lossy();
            match s.parse::<i64>() {
                Ok(i) if !s.starts_with('+') => i.to_string(),
                _ => toml::Value::String(s.into_owned()).to_string(),
            }
        };
        let value = raw.as_ref().map(|values| match arg.get_action() {
            ArgAction::SetTrue => values
                .first()
                .map(|v| v.to_string_lossy().into_owned())
                .unwrap_or_default(),
            ArgAction::Append => {
                let items: Vec<String> = values.iter().map(one).collect();
                format!("[{}]", items.join(", "))
            }
            _ => values.first().map(one).unwrap_or_default(),
        });
        let source = match matches.value_source(id) {
            _ if merged.is_some_and(|m| m.from_file.contains(key)) => "file",
            Some(clap::parser::ValueSource::CommandLine) => "command line",
            Some(clap::parser::ValueSource::EnvVariable) => "environment",
            Some(_) => "default",
            None => "not set",
        };
        out.push(Setting {
            key: key.to_string(),
            value,
            secret: SECRETS.contains(&key),
            source,
            raw,
        });
    }
    out
}

/// The settings in effect as a TOML file, each line with where it comes
/// from; those not set are commented out.
pub fn render(matches: &ArgMatches, merged: &Merged) -> String {
    let mut text = String::new();
    for s in settings(matches, Some(merged)) {
        let (key, from) = (&s.key, s.source);
        match &s.value {
            Some(_) if s.secret => {
                text.push_str(&format!("# {key} = (set, not shown)  # {from}\n"))
            }
            Some(v) => text.push_str(&format!("{key} = {v}  # {from}\n")),
            None => text.push_str(&format!("# {key}  # not set\n")),
        }
    }
    text
}

/// The options whose values differ between `old` and `new`: the key, and
/// each side as shown (a secret as "(set)" on both).
pub fn changes(old: &ArgMatches, new: &ArgMatches) -> Vec<(String, String, String)> {
    settings(old, None)
        .into_iter()
        .zip(settings(new, None))
        .filter(|(a, b)| a.raw != b.raw)
        .map(|(a, b)| {
            let (old, new) = (a.shown(), b.shown());
            (b.key, old, new)
        })
        .collect()
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
