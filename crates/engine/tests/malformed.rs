//! Broken model folders and bad requests give typed errors that name the problem.

mod common;

use std::path::Path;

use atelier_engine::{DiffusionModel, EngineError, GenerateRequest, LoadOptions, SchedulerKind};

fn load(p: &Path) -> Result<DiffusionModel, EngineError> {
    DiffusionModel::load(p, &LoadOptions::default())
}

fn edit_json(path: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

#[test]
fn missing_weight_file_names_the_file() {
    let (_t, dir) = common::copy_fixture("sd15-tiny");
    std::fs::remove_file(dir.join("unet/diffusion_pytorch_model.safetensors")).unwrap();
    match load(&dir) {
        Err(EngineError::MissingFile { path, .. }) => {
            assert!(
                path.ends_with("unet/diffusion_pytorch_model.safetensors"),
                "{path:?}"
            )
        }
        other => panic!("expected MissingFile, got {other:?}"),
    }
}

#[test]
fn missing_config_names_the_file() {
    let (_t, dir) = common::copy_fixture("sd15-tiny");
    std::fs::remove_file(dir.join("vae/config.json")).unwrap();
    let err = load(&dir).unwrap_err();
    assert!(
        matches!(&err, EngineError::MissingFile { path, .. } if path.ends_with("vae/config.json")),
        "{err}"
    );
}

#[test]
fn wrong_shape_names_file_and_tensor() {
    let (_t, dir) = common::copy_fixture("sd15-tiny");
    edit_json(&dir.join("unet/config.json"), |v| {
        v["out_channels"] = 8.into()
    });
    match load(&dir) {
        Err(EngineError::Weights { path, message }) => {
            assert!(
                path.ends_with("diffusion_pytorch_model.safetensors"),
                "{path:?}"
            );
            assert!(message.contains("conv_out"), "{message}");
            assert!(message.contains("shape"), "{message}");
        }
        other => panic!("expected Weights, got {other:?}"),
    }
}

#[test]
fn missing_tensor_names_the_tensor() {
    let (_t, dir) = common::copy_fixture("sd15-tiny");
    edit_json(&dir.join("unet/config.json"), |v| {
        v["layers_per_block"] = 3.into()
    });
    let err = load(&dir).unwrap_err();
    match &err {
        EngineError::Weights { message, .. } => assert!(message.contains("resnets.2"), "{message}"),
        other => panic!("expected Weights, got {other:?}"),
    }
}

#[test]
fn truncated_safetensors_is_reported() {
    let (_t, dir) = common::copy_fixture("sd15-tiny");
    let p = dir.join("vae/diffusion_pytorch_model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    match load(&dir) {
        Err(EngineError::Weights { path, message }) => {
            assert_eq!(path, p);
            assert!(message.contains("truncated"), "{message}");
        }
        other => panic!("expected Weights, got {other:?}"),
    }
}

#[test]
fn garbage_weights_are_not_safetensors() {
    let (_t, dir) = common::copy_fixture("sd15-tiny");
    let p = dir.join("text_encoder/model.safetensors");
    std::fs::write(&p, b"this is not a tensor file at all").unwrap();
    let err = load(&dir).unwrap_err();
    assert!(
        matches!(&err, EngineError::Weights { path, .. } if *path == p),
        "{err}"
    );
}

#[test]
fn unknown_family_is_refused() {
    let (_t, dir) = common::copy_fixture("sd15-tiny");
    edit_json(&dir.join("model_index.json"), |v| {
        v["_class_name"] = "FluxPipeline".into();
        v["unet"] = serde_json::json!(["diffusers", "FluxTransformer2DModel"]);
    });
    let err = load(&dir).unwrap_err();
    match &err {
        EngineError::UnknownFamily { path, message } => {
            assert!(path.ends_with("model_index.json"));
            assert!(message.contains("FluxTransformer2DModel"), "{message}");
        }
        other => panic!("expected UnknownFamily, got {other:?}"),
    }
}

#[test]
fn sdxl_unet_without_second_encoder_is_unknown_family() {
    let (_t, dir) = common::copy_fixture("sdxl-tiny");
    std::fs::remove_dir_all(dir.join("text_encoder_2")).unwrap();
    assert!(matches!(load(&dir), Err(EngineError::UnknownFamily { .. })));
}

#[test]
fn invalid_json_names_the_file() {
    let (_t, dir) = common::copy_fixture("sd15-tiny");
    std::fs::write(dir.join("unet/config.json"), "{ not json").unwrap();
    let err = load(&dir).unwrap_err();
    assert!(
        matches!(&err, EngineError::InvalidConfig { path, .. } if path.ends_with("unet/config.json")),
        "{err}"
    );
}

#[test]
fn unsupported_config_value_is_named() {
    let (_t, dir) = common::copy_fixture("sd15-tiny");
    edit_json(&dir.join("unet/config.json"), |v| {
        v["time_cond_proj_dim"] = 256.into()
    });
    let err = load(&dir).unwrap_err();
    assert!(
        matches!(&err, EngineError::Unsupported { field, .. } if field == "time_cond_proj_dim"),
        "{err}"
    );
}

#[test]
fn missing_tokenizer_is_reported() {
    let (_t, dir) = common::copy_fixture("sdxl-tiny");
    std::fs::remove_file(dir.join("tokenizer_2/merges.txt")).unwrap();
    let err = load(&dir).unwrap_err();
    assert!(
        matches!(&err, EngineError::MissingFile { path, .. } if path.ends_with("tokenizer_2/merges.txt")),
        "{err}"
    );
}

#[test]
fn bad_requests_name_the_field() {
    let m = DiffusionModel::load(&common::fixture("sd15-tiny"), &LoadOptions::default()).unwrap();
    let field_of = |req: GenerateRequest| match m.resolve(&req) {
        Err(EngineError::InvalidRequest { field, .. }) => field,
        other => panic!("expected InvalidRequest, got {other:?}"),
    };
    let base = GenerateRequest {
        prompt: "x".into(),
        ..Default::default()
    };
    assert_eq!(
        field_of(GenerateRequest {
            width: Some(100),
            ..base.clone()
        }),
        "width"
    );
    assert_eq!(
        field_of(GenerateRequest {
            height: Some(0),
            ..base.clone()
        }),
        "height"
    );
    assert_eq!(
        field_of(GenerateRequest {
            steps: Some(0),
            ..base.clone()
        }),
        "steps"
    );
    assert_eq!(
        field_of(GenerateRequest {
            batch_size: Some(0),
            ..base.clone()
        }),
        "batch_size"
    );
    assert_eq!(
        field_of(GenerateRequest {
            guidance_scale: Some(f64::NAN),
            ..base.clone()
        }),
        "guidance_scale"
    );
    let err = "dpm++ 3m sde".parse::<SchedulerKind>().unwrap_err();
    assert!(
        matches!(err, EngineError::UnknownScheduler { ref name, .. } if name == "dpm++ 3m sde"),
        "{err}"
    );
}

#[test]
fn malformed_reference_is_a_typed_error() {
    let m = DiffusionModel::load(&common::fixture("sd15-tiny"), &LoadOptions::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = common::fixture("sd15-tiny").join("reference");
    let dst = tmp.path().join("reference.safetensors");
    std::fs::copy(src.join("reference.safetensors"), &dst).unwrap();
    // A run that claims fewer steps than it records must not index past its schedule.
    let mut meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("reference.json")).unwrap())
            .unwrap();
    meta["runs"][0]["num_inference_steps"] = 2.into();
    std::fs::write(tmp.path().join("reference.json"), meta.to_string()).unwrap();
    match atelier_engine::parity::run(&m, &dst, Some("native_256x256_ddim")) {
        Err(EngineError::Reference { message, .. }) => {
            assert!(message.contains("num_inference_steps"), "{message}")
        }
        other => panic!(
            "expected Reference error, got {:?}",
            other.map(|r| r.rows.len())
        ),
    }
    // A missing metadata file names itself.
    std::fs::remove_file(tmp.path().join("reference.json")).unwrap();
    assert!(matches!(
        atelier_engine::parity::run(&m, &dst, None),
        Err(EngineError::Reference { path, .. }) if path.ends_with("reference.json")
    ));
}
