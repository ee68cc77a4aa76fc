//! Parsing a binary's command line so that a bad value names where it came from.
//!
//! clap reports a bad value by its flag (`invalid value 'abc' for '--lease-ttl'`) even when
//! the user never typed the flag but set `WARREN_LEASE_TTL`, and then looks for a flag that
//! is not there. [`parse`] adds the variable's name to such errors.

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Command, CommandFactory, FromArgMatches};

/// Parses the process's arguments (and environment) into `T`.
///
/// # Errors
/// Returns clap's error, which `main` shows with `error.exit()`; when the bad value came
/// from an environment variable, the message names the variable.
pub fn parse<T: CommandFactory + FromArgMatches>() -> Result<T, clap::Error> {
    parse_from::<T>(std::env::args_os(), |name| std::env::var_os(name))
}

/// [`parse`] with the arguments and the environment passed in (tests).
///
/// # Errors
/// As [`parse`].
pub fn parse_from<T: CommandFactory + FromArgMatches>(
    args: impl IntoIterator<Item = OsString>,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<T, clap::Error> {
    let mut command = T::command();
    let parsed = command
        .try_get_matches_from_mut(args)
        .and_then(|mut matches| T::from_arg_matches_mut(&mut matches));
    parsed.map_err(|error| name_the_variable(&mut command, error, &env))
}

fn name_the_variable(
    command: &mut Command,
    error: clap::Error,
    env: &impl Fn(&str) -> Option<OsString>,
) -> clap::Error {
    if !matches!(
        error.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return error;
    }
    let (Some(ContextValue::String(arg)), Some(ContextValue::String(value))) = (
        error.get(ContextKind::InvalidArg),
        error.get(ContextKind::InvalidValue),
    ) else {
        return error;
    };
    // "--lease-ttl <LEASE_TTL>" → "lease-ttl"
    let Some(long) = arg
        .strip_prefix("--")
        .and_then(|rest| rest.split([' ', '=']).next())
    else {
        return error;
    };
    let Some(variable) = env_of(command, long) else {
        return error;
    };
    // The value is the variable's only if the variable holds it (a flag given as well wins,
    // and would be the one in the error).
    if env(&variable).is_none_or(|set| set.to_string_lossy() != value.as_str()) {
        return error;
    }
    let reason = match (
        std::error::Error::source(&error),
        error.get(ContextKind::ValidValue),
    ) {
        (Some(source), _) => source.to_string(),
        (None, Some(ContextValue::Strings(valid))) => {
            format!("possible values: {}", valid.join(", "))
        }
        _ => "not a valid value".to_owned(),
    };
    command.error(
        error.kind(),
        format!("invalid value '{value}' in the environment variable {variable} (the setting of --{long}): {reason}"),
    )
}

/// Finds the environment variable of the flag `--long`, in `command` or its subcommands.
fn env_of(command: &Command, long: &str) -> Option<String> {
    let own = command
        .get_arguments()
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned());
    own.or_else(|| command.get_subcommands().find_map(|sub| env_of(sub, long)))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        /// A duration.
        #[arg(long, env = "WARREN_LEASE_TTL", default_value = "15s", value_parser = humantime::parse_duration)]
        lease_ttl: Duration,
        #[command(flatten)]
        telemetry: crate::TelemetryArgs,
    }

    // clap reads the real environment, which tests never set; so the bad value is passed as
    // a flag and the fake environment claims to hold it, which is what the check compares.
    fn error(args: &[&str], variable: &str, value: &str) -> String {
        let args = args.iter().map(OsString::from);
        parse_from::<Cli>(args, |name| {
            (name == variable).then(|| OsString::from(value))
        })
        .unwrap_err()
        .to_string()
    }

    #[test]
    fn a_bad_environment_value_names_the_variable() {
        let error = error(&["x", "--lease-ttl", "abc"], "WARREN_LEASE_TTL", "abc");
        assert!(
            error.contains("environment variable WARREN_LEASE_TTL"),
            "{error}"
        );
        assert!(error.contains("'abc'"), "{error}");
        assert!(error.contains("--lease-ttl"), "{error}");
        assert!(error.contains("expected number"), "{error}");
    }

    #[test]
    fn possible_values_are_listed() {
        let error = error(&["x", "--log-format", "xml"], "WARREN_LOG_FORMAT", "xml");
        assert!(error.contains("WARREN_LOG_FORMAT"), "{error}");
        assert!(error.contains("pretty, json"), "{error}");
    }

    #[test]
    fn a_bad_flag_value_names_the_flag_only() {
        let error = error(&["x", "--lease-ttl", "zz"], "WARREN_LEASE_TTL", "1s");
        assert!(!error.contains("WARREN_LEASE_TTL"), "{error}");
        assert!(error.contains("--lease-ttl"), "{error}");
    }

    #[test]
    fn good_values_parse() {
        let args = ["x", "--lease-ttl", "2s"].map(OsString::from);
        let cli = parse_from::<Cli>(args, |_| None).unwrap();
        assert_eq!(cli.lease_ttl, Duration::from_secs(2));
    }
}
