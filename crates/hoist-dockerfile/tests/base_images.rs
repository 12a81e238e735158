//! Resolution with the ENV and `ONBUILD` triggers of base images and base
//! stages.

use std::collections::BTreeMap;

use hoist_dockerfile::instructions::{Instruction, InstructionKind, instructions};
use hoist_dockerfile::parser::parse;
use hoist_dockerfile::stages::{
    BaseImage, BaseImages, BuildOptions, BuildPlan, DEFAULT_PATH, Platform, StageError, resolve,
    resolve_with_bases,
};

fn options() -> BuildOptions {
    let platform = Platform {
        os: "linux".to_owned(),
        architecture: "amd64".to_owned(),
        variant: String::new(),
    };
    BuildOptions {
        build_args: BTreeMap::new(),
        target: None,
        target_platform: platform.clone(),
        build_platform: platform,
    }
}

fn typed(text: &str) -> Vec<Instruction> {
    let file = parse(text, "Dockerfile").expect("test Dockerfile parses");
    instructions(&file).expect("test Dockerfile has valid instructions")
}

fn plan_with(text: &str, bases: &BaseImages) -> Result<BuildPlan, StageError> {
    resolve_with_bases("Dockerfile", '\\', &typed(text), &options(), bases)
}

/// Parses one trigger as an image config stores it, such as `RUN make`.
fn trigger(text: &str) -> InstructionKind {
    typed(text)
        .pop()
        .expect("trigger parses to one instruction")
        .kind
}

fn base(env: &[(&str, &str)], triggers: &[&str]) -> BaseImage {
    BaseImage {
        env: env
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect(),
        triggers: triggers.iter().map(|text| trigger(text)).collect(),
    }
}

fn env_value(plan: &BuildPlan, stage: usize, name: &str) -> Option<String> {
    plan.stages[stage]
        .env
        .iter()
        .find(|variable| variable.name == name)
        .and_then(|variable| variable.value.clone())
}

fn lines(plan: &BuildPlan, stage: usize) -> Vec<String> {
    plan.stages[stage]
        .instructions
        .iter()
        .map(|instruction| instruction.kind.to_line())
        .collect()
}

fn debian_base() -> BaseImages {
    BaseImages::from([(
        "debian".to_owned(),
        base(&[("PATH", "/usr/bin:/bin"), ("HOME", "/root")], &[]),
    )])
}

#[test]
fn image_env_expands_in_env() {
    let text = "FROM debian\nENV PATH=/opt/tool/bin:$PATH\n";
    let plan = plan_with(text, &debian_base()).unwrap();
    assert_eq!(
        env_value(&plan, 0, "PATH").as_deref(),
        Some("/opt/tool/bin:/usr/bin:/bin")
    );
}

#[test]
fn image_env_expands_in_arg_default() {
    let text = "FROM debian\nARG CACHE=$HOME/.cache\nENV C=$CACHE\n";
    let plan = plan_with(text, &debian_base()).unwrap();
    assert_eq!(env_value(&plan, 0, "C").as_deref(), Some("/root/.cache"));
    assert_eq!(lines(&plan, 0)[0], "ARG CACHE=/root/.cache");
}

#[test]
fn image_env_expands_in_workdir_and_copy() {
    let text = "FROM debian\nWORKDIR $HOME/src\nCOPY a.txt $HOME/\n";
    let plan = plan_with(text, &debian_base()).unwrap();
    assert_eq!(lines(&plan, 0), ["WORKDIR /root/src", "COPY a.txt /root/"]);
}

#[test]
fn image_env_reaches_child_stage() {
    let text = "FROM debian AS base\nFROM base\nENV P=$PATH\n";
    let plan = plan_with(text, &debian_base()).unwrap();
    assert_eq!(env_value(&plan, 1, "P").as_deref(), Some("/usr/bin:/bin"));
}

#[test]
fn unknown_image_gets_default_path() {
    let text = "FROM other\nENV PATH=/x:$PATH\n";
    let plan = plan_with(text, &debian_base()).unwrap();
    let expected = format!("/x:{DEFAULT_PATH}");
    assert_eq!(env_value(&plan, 0, "PATH"), Some(expected));
}

#[test]
fn plain_resolve_ignores_image_env() {
    let text = "FROM debian\nENV P=$PATH H=$HOME\n";
    let plan = resolve("Dockerfile", '\\', &typed(text), &options()).unwrap();
    assert_eq!(env_value(&plan, 0, "P").as_deref(), Some(DEFAULT_PATH));
    assert_eq!(env_value(&plan, 0, "H").as_deref(), Some(""));
}

#[test]
fn scratch_stage_gets_default_path() {
    let plan = plan_with("FROM scratch\n", &BaseImages::new()).unwrap();
    assert_eq!(env_value(&plan, 0, "PATH").as_deref(), Some(DEFAULT_PATH));
}

#[test]
fn windows_stage_gets_no_default_path() {
    let text = "FROM --platform=windows/amd64 scratch\nENV P=x$PATH\n";
    let plan = plan_with(text, &BaseImages::new()).unwrap();
    assert_eq!(env_value(&plan, 0, "PATH"), None);
    assert_eq!(env_value(&plan, 0, "P").as_deref(), Some("x"));
}

#[test]
fn stage_platform_is_expanded() {
    let text = "ARG P=linux/arm64/v8\nFROM --platform=$P scratch\n";
    let plan = plan_with(text, &BaseImages::new()).unwrap();
    assert_eq!(plan.stages[0].platform.as_deref(), Some("linux/arm64/v8"));
}

#[test]
fn image_triggers_run_first_in_scope() {
    let bases = BaseImages::from([(
        "builder".to_owned(),
        base(
            &[("HOME", "/home/app")],
            &["COPY . $HOME/src", "RUN make -C $HOME/src"],
        ),
    )]);
    let text = "FROM builder\nRUN echo done\n";
    let plan = plan_with(text, &bases).unwrap();
    assert_eq!(
        lines(&plan, 0),
        [
            "COPY . /home/app/src",
            "RUN make -C $HOME/src",
            "RUN echo done"
        ]
    );
    let trigger_lines: Vec<usize> = plan.stages[0]
        .instructions
        .iter()
        .map(|instruction| instruction.start_line)
        .collect();
    assert_eq!(trigger_lines, [1, 1, 2], "triggers point at the FROM line");
}

#[test]
fn image_trigger_error_names_from_line() {
    let bases = BaseImages::from([("builder".to_owned(), base(&[], &["COPY --from=99 /a /b"]))]);
    let error = plan_with("ARG X\nFROM builder\n", &bases).unwrap_err();
    assert_eq!(error.line, 2);
}

#[test]
fn stage_triggers_run_in_each_child() {
    let text = "\
FROM scratch AS base
ONBUILD ENV FROM_TRIGGER=1
ONBUILD RUN touch /t
FROM base AS one
FROM base AS two
";
    let plan = plan_with(text, &BaseImages::new()).unwrap();
    for stage in [1, 2] {
        assert_eq!(
            lines(&plan, stage),
            ["ENV FROM_TRIGGER=1", "RUN touch /t"],
            "stage {stage}"
        );
        assert_eq!(
            env_value(&plan, stage, "FROM_TRIGGER").as_deref(),
            Some("1")
        );
    }
}

#[test]
fn inherited_triggers_skip_grandchildren() {
    let text = "\
FROM scratch AS base
ONBUILD ENV A=1
FROM base AS child
FROM child AS grandchild
";
    let plan = plan_with(text, &BaseImages::new()).unwrap();
    assert_eq!(lines(&plan, 1), ["ENV A=1"]);
    assert!(lines(&plan, 2).is_empty(), "{:?}", lines(&plan, 2));
}
