//! ARG and ENV scoping across stages, the stage graph and `--target`.

use std::collections::BTreeMap;

use hoist_dockerfile::instructions::{InstructionKind, instructions};
use hoist_dockerfile::parser::parse;
use hoist_dockerfile::shell::ExpandErrorKind;
use hoist_dockerfile::stages::{
    Base, BuildOptions, BuildPlan, Platform, StageErrorKind, Variables, resolve,
};

fn options(build_args: &[(&str, &str)], target: Option<&str>) -> BuildOptions {
    let platform = |architecture: &str| Platform {
        os: "linux".to_owned(),
        architecture: architecture.to_owned(),
        variant: String::new(),
    };
    BuildOptions {
        build_args: build_args
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect(),
        target: target.map(str::to_owned),
        target_platform: platform("arm64"),
        build_platform: platform("amd64"),
    }
}

fn plan(text: &str, options: &BuildOptions) -> Result<BuildPlan, StageErrorKind> {
    let file = parse(text, "Dockerfile").expect("test Dockerfile parses");
    let typed = instructions(&file).expect("test Dockerfile has valid instructions");
    resolve("Dockerfile", file.escape, &typed, options).map_err(|error| *error.kind)
}

fn value_of(variables: &Variables, name: &str) -> Option<String> {
    variables
        .get(name)
        .and_then(|variable| variable.value.clone())
}

fn env_values(plan: &BuildPlan, stage: usize) -> BTreeMap<String, String> {
    plan.stages[stage]
        .env
        .iter()
        .filter_map(|variable| Some((variable.name.clone(), variable.value.clone()?)))
        .collect()
}

#[test]
fn global_args_chain_into_from() {
    let text = "ARG REGISTRY=example.invalid\nARG IMAGE=${REGISTRY}/base:1\nFROM $IMAGE\n";
    let plan = plan(text, &options(&[], None)).unwrap();
    assert_eq!(
        plan.stages[0].base,
        Base::Image("example.invalid/base:1".to_owned())
    );
}

#[test]
fn build_arg_overrides_default() {
    let text = "ARG TAG=1\nFROM base:$TAG\nARG TAG\nENV T=$TAG\n";
    let plan = plan(text, &options(&[("TAG", "2")], None)).unwrap();
    assert_eq!(plan.stages[0].base, Base::Image("base:2".to_owned()));
    assert_eq!(env_values(&plan, 0)["T"], "2");
}

#[test]
fn global_arg_invisible_until_redeclared() {
    let text = "ARG V=1\nFROM scratch\nENV BEFORE=x$V\nARG V\nENV AFTER=x$V\n";
    let plan = plan(text, &options(&[], None)).unwrap();
    let env = env_values(&plan, 0);
    assert_eq!(env["BEFORE"], "x");
    assert_eq!(env["AFTER"], "x1");
}

#[test]
fn stage_inherits_env_and_args() {
    let text = "FROM scratch AS base\nARG A=1\nENV E=2\nFROM base\nENV F=$A$E\n";
    let plan = plan(text, &options(&[], None)).unwrap();
    assert_eq!(plan.stages[1].base, Base::Stage(0));
    assert_eq!(env_values(&plan, 1)["F"], "12");
    assert_eq!(value_of(&plan.stages[1].args, "A").as_deref(), Some("1"));
}

#[test]
fn env_wins_over_arg() {
    let text = "FROM scratch\nARG X=arg\nENV X=env\nENV Y=$X\n";
    let plan = plan(text, &options(&[], None)).unwrap();
    assert_eq!(env_values(&plan, 0)["Y"], "env");
}

#[test]
fn platform_args_are_predefined() {
    let text = "FROM --platform=$BUILDPLATFORM scratch\nARG TARGETARCH\nENV A=$TARGETARCH\n";
    let plan = plan(text, &options(&[], None)).unwrap();
    assert_eq!(plan.stages[0].platform.as_deref(), Some("linux/amd64"));
    assert_eq!(env_values(&plan, 0)["A"], "arm64");
}

#[test]
fn unused_build_arg_is_reported() {
    let text = "FROM scratch\nARG USED\n";
    let plan = plan(
        text,
        &options(&[("USED", "1"), ("UNUSED", "2"), ("HTTP_PROXY", "x")], None),
    )
    .unwrap();
    assert_eq!(plan.warnings.len(), 1);
    assert!(plan.warnings[0].contains("UNUSED"), "{:?}", plan.warnings);
}

#[test]
fn from_through_arg_names_stage() {
    let text = "ARG VARIANT=slim\nFROM scratch AS base-slim\nFROM scratch AS base-full\nFROM base-${VARIANT}\n";
    let plan = plan(text, &options(&[], None)).unwrap();
    assert_eq!(plan.stages[2].base, Base::Stage(0));
    assert_eq!(plan.needed, [0, 2]);
}

#[test]
fn copy_from_and_mount_from_are_dependencies() {
    let text = "FROM scratch AS a\nFROM scratch AS b\nFROM scratch AS c\n\
                FROM scratch\nCOPY --from=a /x /x\nCOPY --from=1 /y /y\n\
                RUN --mount=type=bind,from=c,target=/c true\nCOPY --from=example.invalid/img /z /z\n";
    let plan = plan(text, &options(&[], None)).unwrap();
    let last = &plan.stages[3];
    assert_eq!(
        last.dependencies.iter().copied().collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert!(last.image_references.contains("example.invalid/img"));
    assert_eq!(plan.needed, [0, 1, 2, 3]);
}

#[test]
fn target_selects_needed_stages() {
    let text = "FROM scratch AS deps\nFROM scratch AS unused\nFROM deps AS build\nFROM scratch\n";
    let plan = plan(text, &options(&[], Some("build"))).unwrap();
    assert_eq!(plan.target, 2);
    assert_eq!(plan.needed, [0, 2]);
}

#[test]
fn unknown_target_is_an_error() {
    let outcome = plan("FROM scratch AS a\n", &options(&[], Some("b")));
    assert_eq!(
        outcome.unwrap_err(),
        StageErrorKind::TargetNotFound { name: "b".into() }
    );
}

#[test]
fn self_index_reference_is_an_error() {
    let outcome = plan("FROM scratch\nCOPY --from=0 /a /b\n", &options(&[], None));
    assert_eq!(
        outcome.unwrap_err(),
        StageErrorKind::SelfReference {
            reference: "0".into()
        }
    );
}

#[test]
fn forward_index_reference_is_an_error() {
    let text = "FROM scratch\nCOPY --from=1 /a /b\nFROM scratch\n";
    assert_eq!(
        plan(text, &options(&[], None)).unwrap_err(),
        StageErrorKind::ForwardReference {
            reference: "1".into(),
            stage: 1
        }
    );
}

#[test]
fn copy_from_own_name_is_an_error() {
    let text = "FROM scratch AS build\nCOPY --from=build /a /b\n";
    assert_eq!(
        plan(text, &options(&[], None)).unwrap_err(),
        StageErrorKind::SelfReference {
            reference: "build".into()
        }
    );
}

#[test]
fn copy_from_later_name_is_an_error() {
    let text = "FROM scratch AS first\nCOPY --from=Later /a /b\nFROM scratch AS later\n";
    assert_eq!(
        plan(text, &options(&[], None)).unwrap_err(),
        StageErrorKind::ForwardReference {
            reference: "Later".into(),
            stage: 1
        }
    );
}

#[test]
fn mount_from_later_name_is_an_error() {
    let text = "FROM scratch\nARG S=later\nRUN --mount=from=$S,target=/x true\n\
                FROM scratch AS later\n";
    assert!(matches!(
        plan(text, &options(&[], None)).unwrap_err(),
        StageErrorKind::ForwardReference { stage: 1, .. }
    ));
}

#[test]
fn only_arg_before_first_from() {
    let outcome = plan("ENV A=1\nFROM scratch\n", &options(&[], None));
    assert_eq!(
        outcome.unwrap_err(),
        StageErrorKind::BeforeFirstFrom {
            instruction: "ENV".to_owned()
        }
    );
}

#[test]
fn copy_values_are_expanded() {
    let text = "FROM scratch\nENV DIR=/app\nCOPY --chown=${U:-1000} src $DIR/\n";
    let plan = plan(text, &options(&[], None)).unwrap();
    let InstructionKind::Copy(copy) = &plan.stages[0].instructions[1].kind else {
        panic!("expected COPY");
    };
    assert_eq!(copy.destination, "/app/");
    assert_eq!(copy.chown.as_deref(), Some("1000"));
}

#[test]
fn doubling_env_value_stops_at_limit() {
    // Each line makes X eight times longer: unchecked, the ninth line would
    // need gigabytes.
    let mut text = format!("FROM scratch\nENV X={}\n", "a".repeat(1000));
    for _ in 0..30 {
        text.push_str("ENV X=$X$X$X$X$X$X$X$X\n");
    }

    let error = plan(&text, &options(&[], None)).unwrap_err();

    let StageErrorKind::Expand(expand) = error else {
        panic!("expected an expansion error, got {error:?}");
    };
    assert_eq!(expand.kind, ExpandErrorKind::ResultTooLong);
}

#[test]
fn twenty_thousand_env_names_resolve() {
    let count = 20_000;
    let mut text = String::from("FROM scratch\n");
    for index in 0..count {
        text.push_str(&format!("ENV A{index}={index}\n"));
    }
    text.push_str("ENV A0=again\nWORKDIR /$A0/$A19999\n");
    let plan = plan(&text, &options(&[], None)).unwrap();
    let env: Vec<_> = plan.stages[0].env.iter().collect();
    // The default PATH comes first.
    assert_eq!(env.len(), count + 1);
    assert_eq!(env[1].name, "A0");
    assert_eq!(env[1].value.as_deref(), Some("again"));
    assert_eq!(env[count].name, "A19999");
    let last = plan.stages[0].instructions.last().unwrap();
    let InstructionKind::Workdir(workdir) = &last.kind else {
        panic!("expected WORKDIR, got {last:?}");
    };
    assert_eq!(workdir.value, "/again/19999");
}

#[test]
fn hundred_thousand_chained_stages_resolve() {
    let count = 100_000;
    let mut text = String::from("FROM scratch AS s0\n");
    for index in 1..count {
        text.push_str(&format!("FROM s{} AS s{index}\n", index - 1));
    }
    let plan = plan(&text, &options(&[], None)).unwrap();
    assert_eq!(plan.stages.len(), count);
    assert_eq!(plan.stages[count - 1].base, Base::Stage(count - 2));
    assert_eq!(plan.needed.len(), count);
}

#[test]
fn stage_names_match_ignoring_case() {
    let text = "FROM scratch AS Base\nFROM BASE\nCOPY --from=bAsE /a /b\n";
    let plan = plan(text, &options(&[], None)).unwrap();
    assert_eq!(plan.stages[1].base, Base::Stage(0));
    assert!(plan.stages[1].dependencies.contains(&0));
    assert!(plan.stages[1].image_references.is_empty());
}

#[test]
fn chained_stages_share_variables() {
    // Copying the scope of the base stage would cost stages x variables:
    // 10^8 variable copies here, by estimate tens of seconds in debug.
    let count = 10_000;
    let mut text = String::from("FROM scratch AS s0\nENV E0=0\nARG A0=0\n");
    for index in 1..count {
        let previous = index - 1;
        text.push_str(&format!(
            "FROM s{previous} AS s{index}\nENV E{index}=$E{previous}\nARG A{index}=x\n"
        ));
    }
    let file = parse(&text, "Dockerfile").unwrap();
    let typed = instructions(&file).unwrap();

    let started = std::time::Instant::now();
    let plan = resolve("Dockerfile", file.escape, &typed, &options(&[], None)).unwrap();
    let elapsed = started.elapsed();

    let last = &plan.stages[count - 1];
    // Each stage's ENV contains the default PATH as well.
    assert_eq!(last.env.len(), count + 1);
    assert_eq!(last.args.len(), count);
    assert_eq!(value_of(&last.env, "E9999").as_deref(), Some("0"));
    assert_eq!(plan.stages[1].env.len(), 3);
    // Shared scopes resolve this in under a second in a debug build, so the
    // bound leaves room for a loaded machine and still fails on copying.
    assert!(elapsed.as_secs() < 3, "resolve took {elapsed:?}");
}

#[test]
fn oversized_scope_names_the_line() {
    // Sixteen variables of 1 MiB each reach the 16 MiB cap of one scope.
    let mut text = format!("FROM scratch\nENV X={}\n", "a".repeat(1024));
    text.push_str("ENV X=$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X\n");
    text.push_str("ENV X=$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X\n");
    for index in 0..20 {
        text.push_str(&format!("ENV V{index}=$X\n"));
    }
    let file = parse(&text, "app/Dockerfile").unwrap();
    let typed = instructions(&file).unwrap();
    let error = resolve("app/Dockerfile", file.escape, &typed, &options(&[], None)).unwrap_err();
    assert_eq!(*error.kind, StageErrorKind::ScopeTooLarge);
    // X is 1 MiB from line 4 on, so X and V0 to V13 fit, and V14 on line 19
    // brings the scope past 16 MiB.
    assert_eq!(error.line, 19);
    assert!(
        error.to_string().starts_with("app/Dockerfile:19: "),
        "{error}"
    );
}

#[test]
fn oversized_global_args_are_an_error() {
    let mut text = format!("ARG X={}\n", "a".repeat(1024));
    text.push_str("ARG Y=$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X$X\n");
    text.push_str("ARG Z=$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y$Y\n");
    for index in 0..20 {
        text.push_str(&format!("ARG V{index}=$Z\n"));
    }
    text.push_str("FROM scratch\n");
    assert_eq!(
        plan(&text, &options(&[], None)).unwrap_err(),
        StageErrorKind::ScopeTooLarge
    );
}
