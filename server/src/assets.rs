//! The built browser assets: where they are and what they are called.
//!
//! `scripts/build.sh` names every file in `pkg/` after a hash of its content and writes
//! `assets.json` beside `pkg/`. Because a changed file gets a new name, `/pkg/*` can be
//! cached by browsers and proxies forever.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const MANIFEST_FILE: &str = "assets.json";
pub const PKG_DIR: &str = "pkg";

#[derive(Debug, Clone, Deserialize)]
struct Manifest {
    /// wasm-bindgen's `--out-name`: `NAME.js` and `NAME_bg.wasm` exist in `pkg/`.
    output_name: String,
    /// File name of the stylesheet in `pkg/`.
    stylesheet: String,
}

/// What the server knows about the browser bundle.
#[derive(Debug, Clone)]
pub struct Site {
    pub root: PathBuf,
    pub output_name: String,
    pub stylesheet: String,
    /// Why the bundle cannot be served, if it cannot: shown by `/readyz` and logged once.
    pub problem: Option<String>,
}

impl Site {
    /// Reads the manifest and checks that every file it names exists. A missing bundle is
    /// not fatal: the server still answers (pages render without interactivity) and
    /// `/readyz` says what is wrong.
    pub fn discover(root: &Path) -> Site {
        match Self::read_manifest(root) {
            Ok(manifest) => {
                let pkg = root.join(PKG_DIR);
                let missing: Vec<String> = [
                    format!("{}.js", manifest.output_name),
                    format!("{}_bg.wasm", manifest.output_name),
                    manifest.stylesheet.clone(),
                ]
                .into_iter()
                .filter(|file| !pkg.join(file).is_file())
                .collect();
                let problem = (!missing.is_empty()).then(|| {
                    format!(
                        "site assets missing in {}: {}; run scripts/build.sh",
                        pkg.display(),
                        missing.join(", ")
                    )
                });
                Site {
                    root: root.to_owned(),
                    output_name: manifest.output_name,
                    stylesheet: manifest.stylesheet,
                    problem,
                }
            }
            Err(problem) => Site {
                root: root.to_owned(),
                output_name: "perfpilot".into(),
                stylesheet: "perfpilot.css".into(),
                problem: Some(problem),
            },
        }
    }

    fn read_manifest(root: &Path) -> Result<Manifest, String> {
        let path = root.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|err| {
            format!(
                "site assets not found: cannot read {}: {err}; run scripts/build.sh or pass --site-root",
                path.display()
            )
        })?;
        serde_json::from_str(&text).map_err(|err| format!("{} is not valid: {err}", path.display()))
    }

    pub fn stylesheet_href(&self) -> String {
        format!("/{PKG_DIR}/{}", self.stylesheet)
    }
}
