//! Printing typed instructions back as Dockerfile lines.

use std::time::Duration;

use super::{CommandLine, HealthTest, Healthcheck, InstructionKind, Pairs};

impl InstructionKind {
    /// Formats the instruction as one Dockerfile line (without a newline).
    /// Values are written as stored, so parsing the line gives this
    /// instruction back when the values contain no line breaks. Heredoc
    /// bodies and `RUN --mount` flags are not printed.
    pub fn to_line(&self) -> String {
        let keyword = self.keyword();
        let mut parts: Vec<String> = vec![keyword.to_owned()];
        match self {
            Self::From(from) => {
                push_flag(&mut parts, "platform", from.platform.as_deref());
                parts.push(from.image.clone());
                if let Some(name) = &from.name {
                    parts.extend(["AS".to_owned(), name.clone()]);
                }
            }
            Self::Run(run) => {
                push_flag(&mut parts, "network", run.network.as_deref());
                push_flag(&mut parts, "security", run.security.as_deref());
                parts.push(command_text(&run.command));
            }
            Self::Cmd(command) | Self::Entrypoint(command) => parts.push(command_text(command)),
            Self::Shell(words) => parts.push(json_array(&words.values)),
            Self::Copy(copy) => {
                push_flag(&mut parts, "from", copy.from.as_deref());
                push_flag(&mut parts, "chown", copy.chown.as_deref());
                push_flag(&mut parts, "chmod", copy.chmod.as_deref());
                push_switch(&mut parts, "link", copy.link);
                push_switch(&mut parts, "parents", copy.parents);
                for pattern in &copy.exclude {
                    push_flag(&mut parts, "exclude", Some(pattern));
                }
                parts.extend(copy.sources.iter().cloned());
                parts.push(copy.destination.clone());
            }
            Self::Add(add) => {
                push_flag(&mut parts, "chown", add.chown.as_deref());
                push_flag(&mut parts, "chmod", add.chmod.as_deref());
                push_switch(&mut parts, "link", add.link);
                push_flag(&mut parts, "checksum", add.checksum.as_deref());
                push_switch(&mut parts, "keep-git-dir", add.keep_git_dir);
                for pattern in &add.exclude {
                    push_flag(&mut parts, "exclude", Some(pattern));
                }
                parts.extend(add.sources.iter().cloned());
                parts.push(add.destination.clone());
            }
            Self::Env(pairs) | Self::Label(pairs) => parts.push(pairs_text(pairs)),
            Self::Arg(arg) => {
                parts.extend(
                    arg.args
                        .iter()
                        .map(|declaration| match &declaration.default {
                            Some(default) => format!("{}={default}", declaration.name),
                            None => declaration.name.clone(),
                        }),
                );
            }
            Self::Expose(words) | Self::Volume(words) => parts.extend(words.values.iter().cloned()),
            Self::User(text)
            | Self::Workdir(text)
            | Self::Stopsignal(text)
            | Self::Maintainer(text) => parts.push(text.value.clone()),
            Self::Healthcheck(healthcheck) => push_healthcheck(&mut parts, healthcheck),
            Self::Onbuild(onbuild) => parts.push(onbuild.trigger.to_line()),
        }
        parts.join(" ")
    }
}

fn push_flag(parts: &mut Vec<String>, name: &str, value: Option<&str>) {
    if let Some(value) = value {
        parts.push(format!("--{name}={value}"));
    }
}

fn push_switch(parts: &mut Vec<String>, name: &str, enabled: bool) {
    if enabled {
        parts.push(format!("--{name}"));
    }
}

fn json_array(values: &[String]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".to_owned())
}

fn command_text(command: &CommandLine) -> String {
    match command {
        CommandLine::Shell(text) => text.clone(),
        CommandLine::Exec(words) => json_array(words),
    }
}

fn pairs_text(pairs: &Pairs) -> String {
    let words: Vec<String> = pairs
        .pairs
        .iter()
        .map(|pair| format!("{}={}", pair.key, pair.value))
        .collect();
    words.join(" ")
}

fn duration_text(duration: Duration) -> String {
    format!("{}ns", duration.as_nanos())
}

fn push_healthcheck(parts: &mut Vec<String>, healthcheck: &Healthcheck) {
    let durations = [
        ("interval", healthcheck.interval),
        ("timeout", healthcheck.timeout),
        ("start-period", healthcheck.start_period),
        ("start-interval", healthcheck.start_interval),
    ];
    for (name, value) in durations {
        push_flag(parts, name, value.map(duration_text).as_deref());
    }
    push_flag(
        parts,
        "retries",
        healthcheck
            .retries
            .map(|retries| retries.to_string())
            .as_deref(),
    );
    match &healthcheck.test {
        HealthTest::None => parts.push("NONE".to_owned()),
        HealthTest::Cmd(command) => {
            parts.push("CMD".to_owned());
            parts.push(command_text(command));
        }
    }
}
