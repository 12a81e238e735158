//! A generated instruction list, printed as a Dockerfile and parsed back,
//! gives the same instructions.

use std::time::Duration;

use hoist_dockerfile::instructions::{
    ArgDeclaration, ArgInstruction, CommandLine, CopyInstruction, FromInstruction, HealthTest,
    Healthcheck, InstructionKind, Pair, Pairs, RunInstruction, Text, Words, instructions,
};
use hoist_dockerfile::parser::parse;
use proptest::prelude::*;

/// A word that needs no quoting: no spaces, quotes, escapes or `$`.
fn word() -> impl Strategy<Value = String> {
    "[a-z0-9_./:][a-z0-9_./:-]{0,11}"
}

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,7}"
}

/// Shell-form text: words separated by single spaces, not starting with `[`.
fn shell_text() -> impl Strategy<Value = String> {
    prop::collection::vec(word(), 1..5).prop_map(|words| words.join(" "))
}

fn command_line() -> impl Strategy<Value = CommandLine> {
    prop_oneof![
        shell_text().prop_map(CommandLine::Shell),
        prop::collection::vec(any::<String>(), 1..4)
            .prop_map(|words| words
                .into_iter()
                .map(|w| w.replace(['\n', '\r'], " "))
                .collect())
            .prop_map(CommandLine::Exec),
    ]
}

fn optional(strategy: impl Strategy<Value = String>) -> impl Strategy<Value = Option<String>> {
    prop::option::of(strategy)
}

fn instruction() -> impl Strategy<Value = InstructionKind> {
    prop_oneof![
        (word(), optional(name()), optional(word())).prop_map(|(image, name, platform)| {
            InstructionKind::From(FromInstruction {
                image,
                name,
                platform,
            })
        }),
        (
            command_line(),
            optional(prop_oneof![
                Just("none".to_owned()),
                Just("host".to_owned())
            ])
        )
            .prop_map(|(command, network)| InstructionKind::Run(RunInstruction {
                command,
                heredocs: Vec::new(),
                mounts: Vec::new(),
                network,
                security: None,
            })),
        command_line().prop_map(InstructionKind::Cmd),
        (
            prop::collection::vec(word(), 1..4),
            word(),
            optional(name()),
            optional(word()),
            any::<bool>(),
            prop::collection::vec(word(), 0..2)
        )
            .prop_map(|(sources, destination, from, chown, link, exclude)| {
                InstructionKind::Copy(CopyInstruction {
                    sources,
                    destination,
                    heredocs: Vec::new(),
                    from,
                    chown,
                    chmod: None,
                    link,
                    parents: false,
                    exclude,
                })
            }),
        prop::collection::vec((name(), word()), 1..4).prop_map(|pairs| {
            InstructionKind::Env(Pairs {
                pairs: pairs
                    .into_iter()
                    .map(|(key, value)| Pair { key, value })
                    .collect(),
            })
        }),
        prop::collection::vec((name(), optional(word())), 1..3).prop_map(|args| {
            InstructionKind::Arg(ArgInstruction {
                args: args
                    .into_iter()
                    .map(|(name, default)| ArgDeclaration { name, default })
                    .collect(),
            })
        }),
        prop::collection::vec(word(), 1..3)
            .prop_map(|values| InstructionKind::Expose(Words { values })),
        word().prop_map(|value| InstructionKind::Workdir(Text { value })),
        shell_text().prop_map(|value| InstructionKind::User(Text { value })),
        (1u64..100_000, prop::option::of(0u32..10), command_line()).prop_map(
            |(millis, retries, command)| {
                InstructionKind::Healthcheck(Healthcheck {
                    test: HealthTest::Cmd(command),
                    interval: Some(Duration::from_millis(millis)),
                    timeout: None,
                    start_period: None,
                    start_interval: None,
                    retries,
                })
            }
        ),
    ]
}

proptest! {
    #[test]
    fn printed_instructions_parse_back(list in prop::collection::vec(instruction(), 1..12)) {
        let text: String = list.iter().map(|kind| kind.to_line() + "\n").collect();
        let dockerfile = parse(&text, "Dockerfile").expect("printed Dockerfile parses");
        let parsed: Vec<InstructionKind> = instructions(&dockerfile)
            .expect("printed instructions are valid")
            .into_iter()
            .map(|instruction| instruction.kind)
            .collect();
        prop_assert_eq!(parsed, list, "{}", text);
    }
}
