//! Developer tasks for ssmd.
//!
//! * `cargo xtask vendor PATH/service-2.json BOTOCORE_VERSION` — copies botocore's SSM model into
//!   `model/`, with every documentation string removed (AWS's prose does not go into the project).
//! * `cargo xtask codegen [--check]` — generates `crates/model/src/generated/*.rs` from the vendored
//!   model. With `--check` nothing is written; the command fails if the checked-in output is stale
//!   (CI runs this).

mod codegen;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("vendor") => {
            let (Some(src), Some(ver)) = (args.get(1), args.get(2)) else {
                bail!("usage: cargo xtask vendor PATH/service-2.json BOTOCORE_VERSION");
            };
            vendor(Path::new(src), ver)
        }
        Some("codegen") => {
            let check = args.iter().any(|a| a == "--check");
            let files = codegen::generate(&load_model()?)?;
            let dir = root().join("crates/model/src/generated");
            let mut stale = Vec::new();
            for (name, text) in &files {
                let path = dir.join(name);
                let current = std::fs::read_to_string(&path).unwrap_or_default();
                if current != *text {
                    if check {
                        stale.push(name.clone());
                    } else {
                        std::fs::create_dir_all(&dir)?;
                        std::fs::write(&path, text)?;
                        println!("wrote {}", path.display());
                    }
                }
            }
            if !stale.is_empty() {
                bail!("generated code is stale ({}); run `cargo xtask codegen`", stale.join(", "));
            }
            Ok(())
        }
        _ => bail!("usage: cargo xtask (vendor PATH VERSION | codegen [--check])"),
    }
}

fn load_model() -> Result<Value> {
    let path = root().join("model/ssm-2014-11-06.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

fn strip_docs(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("documentation");
            map.remove("documentationUrl");
            for (_, child) in map.iter_mut() {
                strip_docs(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_docs),
        _ => {}
    }
}

fn vendor(src: &Path, version: &str) -> Result<()> {
    let mut model: Value = serde_json::from_str(&std::fs::read_to_string(src)?)?;
    strip_docs(&mut model);
    let dir = root().join("model");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("ssm-2014-11-06.json"), serde_json::to_string_pretty(&model)? + "\n")?;
    std::fs::write(dir.join("BOTOCORE_VERSION"), format!("{version}\n"))?;
    println!("vendored botocore {version} SSM model into model/");
    Ok(())
}
