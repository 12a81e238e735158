//! Every error message names the file, the line and the offending text.

use std::collections::BTreeMap;

use hoist_dockerfile::instructions::instructions;
use hoist_dockerfile::parser::parse;
use hoist_dockerfile::stages::{BuildOptions, Platform, resolve};

/// Parses and types `text` and returns the error message.
fn error_message(text: &str) -> String {
    let outcome = parse(text, "app/Dockerfile")
        .map_err(|error| error.to_string())
        .and_then(|file| instructions(&file).map_err(|error| error.to_string()));
    match outcome {
        Ok(_) => panic!("expected an error for {text:?}"),
        Err(message) => message,
    }
}

fn render(cases: &[&str]) -> String {
    cases
        .iter()
        .map(|text| format!("{text:?}\n  => {}\n", error_message(text)))
        .collect()
}

#[test]
fn parse_error_messages() {
    insta::assert_snapshot!(render(&[
        "",
        "# only a comment\n\n",
        "# escape=x\nFROM a\n",
        "# escape=`\n# escape=\\\nFROM a\n",
        "FROM a\nENV PATH\n",
        "FROM a\nENV a=b c\n",
        "FROM a\nCMD [\"echo\", [\"nested\"]]\n",
        "FROM a\nRUN <<EOF\necho\n",
        "FROM a\nONBUILD ONBUILD ONBUILD ONBUILD ONBUILD ONBUILD ONBUILD ONBUILD ONBUILD RUN x\n",
    ]));
}

#[test]
fn instruction_error_messages() {
    insta::assert_snapshot!(render(&[
        "FROM a\nFETCH x\n",
        "FROM a\nCOPY --form=build a b\n",
        "FROM a\nCOPY --from a b\n",
        "FROM a\nCOPY --from=x --from=y a b\n",
        "FROM a\nCOPY --link=maybe a b\n",
        "FROM a\nCOPY a\n",
        "FROM a\nADD --from=x a b\n",
        "FROM --platform a\n",
        "FROM a AS 1st\n",
        "FROM a b c d\n",
        "FROM a\nRUN --network=bridge make\n",
        "FROM a\nRUN --security=root make\n",
        "FROM a\nRUN --mount=type=nfs,target=/x make\n",
        "FROM a\nRUN --mount=type=cache make\n",
        "FROM a\nRUN --mount=target=/x,colour=red make\n",
        "FROM a\nRUN --mount=type=cache,target=/x,mode=999 make\n",
        "FROM a\nRUN --mount=type=cache,target=/x,uid=-1 make\n",
        "FROM a\nRUN\n",
        "FROM a\nHEALTHCHECK --interval=5 CMD true\n",
        "FROM a\nHEALTHCHECK --timeout=10ns CMD true\n",
        "FROM a\nHEALTHCHECK --retries=many CMD true\n",
        "FROM a\nHEALTHCHECK CONNECT TCP 7000\n",
        "FROM a\nHEALTHCHECK --interval=5s NONE\n",
        "FROM a\nSHELL /bin/sh -c\n",
        "FROM a\nCMD --verbose true\n",
        "FROM a\nWORKDIR\n",
        "FROM a\nONBUILD FROM b\n",
        "FROM a\nLABEL =x\n",
        "FROM a\nRUN --mount=type=cache,target=/a,dst=/b make\n",
        "FROM a\nRUN --mount=target=/a,ro,rw make\n",
    ]));
}

/// Parses, types and resolves `text` and returns the resolver's error.
fn stage_error_message(text: &str) -> String {
    let file = parse(text, "app/Dockerfile").expect("test Dockerfile parses");
    let typed = instructions(&file).expect("test Dockerfile has valid instructions");
    let platform = Platform {
        os: "linux".to_owned(),
        architecture: "amd64".to_owned(),
        variant: String::new(),
    };
    let options = BuildOptions {
        build_args: BTreeMap::new(),
        target: None,
        target_platform: platform.clone(),
        build_platform: platform,
    };
    match resolve("app/Dockerfile", file.escape, &typed, &options) {
        Ok(_) => panic!("expected an error for {text:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn stage_error_messages() {
    let cases = [
        "FROM a\nEXPOSE abc\n",
        "FROM a\nEXPOSE 80/tcp 8000-8010/udp 70000\n",
        "FROM a\nEXPOSE 8010-8000\n",
        "FROM a\nEXPOSE 80/http\n",
        "FROM a\nARG PORT=x1\nEXPOSE $PORT\n",
        "FROM a\nCOPY --chmod=999 a b\n",
        "FROM a\nADD --chmod=u+z a b\n",
        "FROM a\nADD --checksum=sha256:abc https://example.invalid/f /f\n",
        "FROM a\nADD --checksum=md5:0123 https://example.invalid/f /f\n",
        "FROM a\nSTOPSIGNAL SIGNOPE\n",
        "FROM a\nSTOPSIGNAL 99\n",
        "FROM a\nARG SIG=NOPE\nSTOPSIGNAL $SIG\n",
        "FROM :tag\n",
        "FROM NotLower/Image\n",
        "ARG IMAGE=Bad\nFROM $IMAGE\n",
        "FROM a\nCOPY --from=NotLower/Image a b\n",
        "FROM a\nRUN --mount=from=:tag,target=/x true\n",
        "FROM a\nRUN --mount=type=tmpfs,target=/x,size=abc true\n",
        "FROM a AS self\nCOPY --from=self a b\n",
        "FROM a\nCOPY --from=later a b\nFROM a AS later\n",
        "FROM a\nRUN --mount=from=1,target=/x true\nFROM a\n",
        "FROM a\nFROM a\nCOPY --from=7 a b\n",
        "FROM --platform=bogus a\n",
        "ARG P=linux/amd64/v1/x\nFROM --platform=$P a\n",
        "FROM --platform=linux//amd64 scratch\n",
        "ARG UNSET\nFROM --platform=$UNSET scratch\n",
    ];
    let rendered: String = cases
        .iter()
        .map(|text| format!("{text:?}\n  => {}\n", stage_error_message(text)))
        .collect();
    insta::assert_snapshot!(rendered);
}
