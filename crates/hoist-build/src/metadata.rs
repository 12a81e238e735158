//! Instructions that change only the image config, and their history
//! entries as BuildKit writes them.

use std::collections::BTreeSet;

use hoist_dockerfile::instructions::{CommandLine, HealthTest, InstructionKind};
use hoist_image::RuntimeConfig;

use crate::stage::StageState;

/// Applies a metadata instruction to the stage's image config. RUN, COPY,
/// ADD and ARG are handled by the executor and change nothing here.
pub(crate) fn apply(kind: &InstructionKind, state: &mut StageState) {
    if let InstructionKind::Maintainer(text) = kind {
        state.image.config_mut().author = Some(text.value.clone());
        return;
    }
    let cmd_set = &mut state.cmd_set;
    let config = &mut state.image.config_mut().config;
    let shell = shell_of(config);
    match kind {
        InstructionKind::Env(pairs) => {
            let env = config.env.get_or_insert_with(Vec::new);
            for pair in &pairs.pairs {
                let prefix = format!("{}=", pair.key);
                env.retain(|variable| !variable.starts_with(&prefix));
                env.push(format!("{}={}", pair.key, pair.value));
            }
        }
        InstructionKind::Label(pairs) => {
            let labels = config.labels.get_or_insert_with(Default::default);
            for pair in &pairs.pairs {
                labels.insert(pair.key.clone(), pair.value.clone());
            }
        }
        InstructionKind::Expose(words) => {
            let ports = config.exposed_ports.get_or_insert_with(BTreeSet::new);
            ports.extend(words.values.iter().map(|port| port_with_protocol(port)));
        }
        InstructionKind::Volume(words) => {
            let volumes = config.volumes.get_or_insert_with(BTreeSet::new);
            volumes.extend(words.values.iter().cloned());
        }
        InstructionKind::User(text) => config.user = Some(text.value.clone()),
        InstructionKind::Workdir(text) => {
            let current = config.working_dir.clone().unwrap_or_else(|| "/".to_owned());
            config.working_dir = Some(join_workdir(&current, &text.value));
        }
        InstructionKind::Cmd(command) => {
            config.cmd = Some(argv(&shell, command));
            *cmd_set = true;
        }
        InstructionKind::Entrypoint(command) => {
            config.entrypoint = Some(argv(&shell, command));
            // Docker drops an inherited CMD when a stage sets ENTRYPOINT,
            // but keeps a CMD set earlier in the same stage.
            if !*cmd_set {
                config.cmd = None;
            }
        }
        InstructionKind::Shell(words) => config.shell = Some(words.values.clone()),
        InstructionKind::Stopsignal(text) => config.stop_signal = Some(text.value.clone()),
        InstructionKind::Healthcheck(check) => {
            let test = match &check.test {
                HealthTest::None => vec!["NONE".to_owned()],
                HealthTest::Cmd(CommandLine::Exec(argv)) => {
                    let mut test = vec!["CMD".to_owned()];
                    test.extend(argv.iter().cloned());
                    test
                }
                HealthTest::Cmd(CommandLine::Shell(text)) => {
                    vec!["CMD-SHELL".to_owned(), text.clone()]
                }
            };
            let nanoseconds = |duration: Option<std::time::Duration>| {
                duration.map(|value| i64::try_from(value.as_nanos()).unwrap_or(i64::MAX))
            };
            config.healthcheck = Some(hoist_image::Healthcheck {
                test: Some(test),
                interval: nanoseconds(check.interval),
                timeout: nanoseconds(check.timeout),
                start_period: nanoseconds(check.start_period),
                start_interval: nanoseconds(check.start_interval),
                retries: check.retries.map(i64::from),
                ..Default::default()
            });
        }
        InstructionKind::Onbuild(onbuild) => {
            let triggers = config.on_build.get_or_insert_with(Vec::new);
            triggers.push(onbuild.original.clone());
        }
        _ => {}
    }
}

/// Formats the history entry of a metadata instruction as BuildKit does,
/// which prints several values with Go's `%v` and `%q` formats.
pub(crate) fn created_by(kind: &InstructionKind, config: &RuntimeConfig) -> String {
    match kind {
        InstructionKind::Cmd(_) => format!("CMD {}", go_quoted(config.cmd.as_deref())),
        InstructionKind::Entrypoint(_) => {
            format!("ENTRYPOINT {}", go_quoted(config.entrypoint.as_deref()))
        }
        InstructionKind::Expose(words) => {
            let ports: BTreeSet<String> =
                words.values.iter().map(|p| port_with_protocol(p)).collect();
            let entries: Vec<String> = ports.iter().map(|port| format!("{port}:{{}}")).collect();
            format!("EXPOSE map[{}]", entries.join(" "))
        }
        InstructionKind::Volume(words) => format!("VOLUME [{}]", words.values.join(" ")),
        InstructionKind::Shell(words) => format!("SHELL [{}]", words.values.join(" ")),
        InstructionKind::Workdir(_) => {
            format!("WORKDIR {}", config.working_dir.as_deref().unwrap_or("/"))
        }
        other => other.to_line(),
    }
}

fn shell_of(config: &RuntimeConfig) -> Vec<String> {
    config
        .shell
        .clone()
        .unwrap_or_else(|| vec!["/bin/sh".to_owned(), "-c".to_owned()])
}

fn argv(shell: &[String], command: &CommandLine) -> Vec<String> {
    match command {
        CommandLine::Exec(argv) => argv.clone(),
        CommandLine::Shell(text) => {
            let mut argv = shell.to_vec();
            argv.push(text.clone());
            argv
        }
    }
}

fn port_with_protocol(port: &str) -> String {
    if port.contains('/') {
        port.to_ascii_lowercase()
    } else {
        format!("{port}/tcp")
    }
}

/// Joins a `WORKDIR` value to the current one: an absolute path replaces
/// it, a relative one extends it.
pub(crate) fn join_workdir(current: &str, value: &str) -> String {
    if value.starts_with('/') {
        return value.to_owned();
    }
    let current = current.trim_end_matches('/');
    format!("{current}/{value}")
}

/// Formats a list as Go's `%q` does: `["a" "b"]`.
fn go_quoted(values: Option<&[String]>) -> String {
    let quoted: Vec<String> = values
        .unwrap_or_default()
        .iter()
        .map(|value| serde_json::to_string(value).unwrap_or_default())
        .collect();
    format!("[{}]", quoted.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_workdir_extends_current() {
        assert_eq!(join_workdir("/app", "src"), "/app/src");
        assert_eq!(join_workdir("/", "src"), "/src");
        assert_eq!(join_workdir("/app", "/opt"), "/opt");
    }

    #[test]
    fn go_quoted_list_matches_go() {
        let values = vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            "echo \"hi\"".to_owned(),
        ];
        assert_eq!(
            go_quoted(Some(&values)),
            r#"["/bin/sh" "-c" "echo \"hi\""]"#
        );
    }

    #[test]
    fn bare_port_gets_tcp() {
        assert_eq!(port_with_protocol("80"), "80/tcp");
        assert_eq!(port_with_protocol("53/UDP"), "53/udp");
    }
}
