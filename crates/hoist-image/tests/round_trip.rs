//! Property tests: any image config and any rendered manifest read back as they were
//! written, and writing them again gives the same bytes.

use std::collections::{BTreeMap, BTreeSet};

use hoist_image::{
    Compression, Healthcheck, History, Image, ImageConfig, Layer, ManifestDocument, ManifestFormat,
    Platform, digest_bytes,
};
use proptest::collection::{btree_map, btree_set, vec};
use proptest::option;
use proptest::prelude::*;
use serde_json::Value;

fn text() -> impl Strategy<Value = String> {
    "[ -~\\u{e9}\\u{4e2d}]{0,12}"
}

fn words() -> impl Strategy<Value = Vec<String>> {
    vec(text(), 0..4)
}

fn healthcheck() -> impl Strategy<Value = Healthcheck> {
    (
        option::of(words()),
        option::of(any::<i64>()),
        option::of(0..10_i64),
    )
        .prop_map(|(test, interval, retries)| Healthcheck {
            test,
            interval,
            retries,
            ..Healthcheck::default()
        })
}

/// Keys that no named field of the config uses, for the unknown-field maps.
fn extra() -> impl Strategy<Value = BTreeMap<String, Value>> {
    btree_map("x-[a-z]{1,6}", text().prop_map(Value::from), 0..3)
}

fn config() -> impl Strategy<Value = ImageConfig> {
    let runtime = (
        (
            option::of(text()),
            option::of(btree_set("[0-9]{1,5}/(tcp|udp)", 0..3)),
        ),
        (
            option::of(words()),
            option::of(words()),
            option::of(words()),
        ),
        (
            option::of(btree_set("/[a-z]{1,8}", 0..3)),
            option::of(btree_map(text(), text(), 0..3)),
        ),
        (
            option::of(healthcheck()),
            option::of(words()),
            option::of(words()),
            extra(),
        ),
    );
    let history = vec(
        (option::of(text()), option::of(text()), any::<bool>()).prop_map(
            |(created_by, comment, empty_layer)| History {
                created_by,
                comment,
                empty_layer,
                ..History::default()
            },
        ),
        0..4,
    );
    (
        runtime,
        history,
        option::of(text()),
        option::of("v[5-8]"),
        extra(),
    )
        .prop_map(|(runtime, history, author, variant, extra)| {
            let ((user, ports), (env, entrypoint, cmd), (volumes, labels), rest) = runtime;
            let (healthcheck, on_build, shell, runtime_extra) = rest;
            let mut config = ImageConfig::scratch(&Platform::linux_amd64());
            config.author = author;
            config.variant = variant;
            config.history = history;
            config.extra = extra;
            let runtime = &mut config.config;
            runtime.user = user;
            runtime.exposed_ports = ports;
            runtime.env = env;
            runtime.entrypoint = entrypoint;
            runtime.cmd = cmd;
            runtime.volumes = volumes;
            runtime.labels = labels;
            runtime.healthcheck = healthcheck;
            runtime.on_build = on_build;
            runtime.shell = shell;
            runtime.extra = runtime_extra;
            config
        })
}

fn compression() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Gzip),
        Just(Compression::Zstd)
    ]
}

proptest! {
    #[test]
    fn config_json_round_trips(config in config()) {
        let json = config.to_json();
        let parsed = ImageConfig::from_json(&json).unwrap();
        prop_assert_eq!(&parsed, &config);
        prop_assert_eq!(parsed.to_json(), json);
    }

    #[test]
    fn manifest_json_round_trips(
        layers in vec((compression(), any::<[u8; 8]>(), 1..1_000_000_u64), 0..5),
        docker in any::<bool>(),
    ) {
        let mut image = Image::scratch(&Platform::linux_amd64());
        for (compression, seed, size) in &layers {
            let digest = digest_bytes(seed);
            let diff_id = digest_bytes(&[seed.as_slice(), b"diff"].concat());
            let layer = Layer::from_file("/blob", *compression, digest, *size, diff_id);
            image.add_layer(layer, History::default());
        }
        let format = if docker { ManifestFormat::Docker } else { ManifestFormat::Oci };
        let has_zstd = layers.iter().any(|(compression, ..)| *compression == Compression::Zstd);
        let Ok(rendered) = image.render(format) else {
            prop_assert!(docker && has_zstd);
            return Ok(());
        };
        let ManifestDocument::Image(parsed) =
            ManifestDocument::parse(&rendered.manifest_json, None).unwrap()
        else {
            panic!("a rendered manifest parses as an image manifest");
        };
        prop_assert_eq!(parsed.format().unwrap(), format);
        prop_assert_eq!(parsed.to_json(), rendered.manifest_json.clone());
        prop_assert_eq!(&*parsed, &rendered.manifest);
        let config = parsed.read_config(&rendered.config_json).unwrap();
        prop_assert_eq!(&config, image.config());
    }
}

#[test]
fn empty_collections_stay_present() {
    let mut config = ImageConfig::scratch(&Platform::linux_amd64());
    config.config.cmd = Some(Vec::new());
    config.config.labels = Some(BTreeMap::new());
    config.config.volumes = Some(BTreeSet::new());
    let parsed = ImageConfig::from_json(&config.to_json()).unwrap();
    assert_eq!(parsed.config.cmd, Some(Vec::new()));
    assert_eq!(parsed.config.labels, Some(BTreeMap::new()));
    assert_eq!(parsed.config.volumes, Some(BTreeSet::new()));
}
