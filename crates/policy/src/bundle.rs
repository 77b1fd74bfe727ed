//! Bundles: Rego modules plus one merged data document, as read from a directory (by the
//! caller: this crate does no I/O) or embedded in the binary.
//!
//! Data files follow OPA's bundle layout: a file named `data.json`, `data.yaml` or `data.yml`
//! is merged into the data document at the path of its directory, so `data.json` at the top
//! is the root and `teams/payments/data.yaml` lands under `data.teams.payments`. Objects merge
//! key by key; any other value set by two files is a conflict.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// One Rego source file of a bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    /// Its path inside the bundle, `/`-separated (used in error messages).
    pub path: String,
    /// The Rego source.
    pub source: String,
}

impl Module {
    /// Whether this is a test module (`*_test.rego`): run by [`crate::run_tests`], left out of
    /// the program the gateway evaluates.
    pub fn is_test(&self) -> bool {
        file_name(&self.path).ends_with("_test.rego")
    }
}

/// Policy sources and data, not yet compiled. Build one with [`Bundle::from_sources`] or
/// [`Bundle::embedded_default`], then [`crate::Policy::compile`] it.
#[derive(Clone, Debug)]
pub struct Bundle {
    modules: Vec<Module>,
    data: Value,
}

/// The default bundle's files, in `crates/policy/bundle/`.
const DEFAULT_MODULES: [(&str, &str); 2] = [
    ("portcullis.rego", include_str!("../bundle/portcullis.rego")),
    (
        "portcullis_test.rego",
        include_str!("../bundle/portcullis_test.rego"),
    ),
];
const DEFAULT_DATA: (&str, &str) = ("data.json", include_str!("../bundle/data.json"));

impl Bundle {
    /// The built-in default bundle (package `portcullis`, its settings and its tests).
    pub fn embedded_default() -> Bundle {
        let modules = DEFAULT_MODULES
            .iter()
            .map(|(path, source)| Module {
                path: (*path).to_owned(),
                source: (*source).to_owned(),
            })
            .collect();
        let data = vec![(DEFAULT_DATA.0.to_owned(), DEFAULT_DATA.1.to_owned())];
        // INVARIANT: the embedded data.json is valid (the unit test
        // `embedded_default_bundle_builds` fails the build otherwise), so this cannot fail.
        #[allow(clippy::expect_used)]
        Bundle::from_sources(modules, data).expect("invariant: the embedded bundle is valid")
    }

    /// Assembles a bundle from module sources and data files, each `(path, text)`.
    ///
    /// `data_files` are files named `data.json`, `data.yaml` or `data.yml` at any depth; each
    /// must hold an object, merged into the data document at the path of its directory (top
    /// level ones at the root). Paths use `/` (or `\`) and are relative to the bundle root.
    /// Fails on an empty or repeated module path, a data file with another name or a `..`
    /// component, a parse error, or two data files setting the same non-object key.
    pub fn from_sources(modules: Vec<Module>, data_files: Vec<(String, String)>) -> Result<Bundle> {
        for (i, module) in modules.iter().enumerate() {
            if module.path.trim().is_empty() {
                return Err(Error::InvalidModulePath {
                    path: module.path.clone(),
                    reason: "empty",
                });
            }
            if modules[..i].iter().any(|m| m.path == module.path) {
                return Err(Error::InvalidModulePath {
                    path: module.path.clone(),
                    reason: "given twice",
                });
            }
        }
        let mut data = Map::new();
        for (path, text) in &data_files {
            merge_data_file(&mut data, path, text)?;
        }
        Ok(Bundle {
            modules,
            data: Value::Object(data),
        })
    }

    /// The modules, in the order given.
    pub fn modules(&self) -> &[Module] {
        &self.modules
    }

    /// The merged data document (always an object).
    pub fn data(&self) -> &Value {
        &self.data
    }
}

/// The last `/`- or `\`-separated component of `path`.
fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// Parses one data file and merges it into `root` at its directory's path.
fn merge_data_file(root: &mut Map<String, Value>, path: &str, text: &str) -> Result<()> {
    let invalid = |reason| Error::InvalidDataPath {
        path: path.to_owned(),
        reason,
    };
    let mut components: Vec<&str> = path
        .split(['/', '\\'])
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let Some(name) = components.pop() else {
        return Err(invalid("empty"));
    };
    if components.contains(&"..") {
        return Err(invalid("`..` is not allowed"));
    }
    let value: Value = match name {
        "data.json" => serde_json::from_str(text).map_err(|source| Error::DataJson {
            path: path.to_owned(),
            source,
        })?,
        "data.yaml" | "data.yml" => {
            serde_yaml_ng::from_str(text).map_err(|source| Error::DataYaml {
                path: path.to_owned(),
                source,
            })?
        }
        _ => {
            return Err(invalid(
                "data files must be named data.json, data.yaml or data.yml",
            ));
        }
    };
    let Value::Object(object) = value else {
        return Err(Error::DataNotObject {
            path: path.to_owned(),
        });
    };
    // Walk (creating objects) down to the directory's node, then merge the file's keys there.
    let mut node = root;
    let mut key_path: Vec<String> = Vec::with_capacity(components.len() + 1);
    for component in components {
        key_path.push(component.to_owned());
        let entry = node
            .entry(component.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        node = match entry {
            Value::Object(map) => map,
            _ => return Err(conflict(path, &key_path)),
        };
    }
    merge_object(node, object, path, &mut key_path)
}

/// Merges `incoming` into `target`: objects recursively, anything else only into a new key.
/// `key_path` is the data path of `target`, for the error message.
fn merge_object(
    target: &mut Map<String, Value>,
    incoming: Map<String, Value>,
    path: &str,
    key_path: &mut Vec<String>,
) -> Result<()> {
    for (key, value) in incoming {
        match (target.get_mut(&key), value) {
            (None, value) => {
                target.insert(key, value);
            }
            (Some(Value::Object(existing)), Value::Object(more)) => {
                key_path.push(key);
                merge_object(existing, more, path, key_path)?;
                key_path.pop();
            }
            (Some(_), _) => {
                key_path.push(key);
                return Err(conflict(path, key_path));
            }
        }
    }
    Ok(())
}

fn conflict(path: &str, key_path: &[String]) -> Error {
    Error::DataConflict {
        path: path.to_owned(),
        key: key_path.join("."),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn module(path: &str) -> Module {
        Module {
            path: path.to_owned(),
            source: "package x".to_owned(),
        }
    }

    fn data(files: &[(&str, &str)]) -> Result<Value> {
        let files = files
            .iter()
            .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
            .collect();
        Bundle::from_sources(vec![], files).map(|b| b.data().clone())
    }

    #[test]
    fn embedded_default_bundle_builds() {
        let bundle = Bundle::embedded_default();
        assert_eq!(bundle.modules().len(), 2);
        assert!(bundle.data()["portcullis_settings"].is_object());
        assert!(!bundle.modules()[0].is_test());
        assert!(bundle.modules()[1].is_test());
    }

    #[test]
    fn top_level_data_files_merge_at_the_root() {
        let merged = data(&[
            ("data.json", r#"{"a": {"x": 1}}"#),
            ("data.yaml", "a:\n  y: 2\nb: [1, 2]\n"),
        ])
        .unwrap();
        assert_eq!(merged, json!({"a": {"x": 1, "y": 2}, "b": [1, 2]}));
    }

    #[test]
    fn nested_data_files_merge_at_their_directory_path() {
        let merged = data(&[
            ("teams/payments/data.yml", "limit: 5\n"),
            ("./teams\\search/data.json", r#"{"limit": 7}"#),
            ("teams/data.json", r#"{"payments": {"owner": "ann"}}"#),
        ])
        .unwrap();
        assert_eq!(
            merged,
            json!({"teams": {"payments": {"limit": 5, "owner": "ann"}, "search": {"limit": 7}}})
        );
    }

    #[test]
    fn overlapping_leaves_conflict_and_name_the_key() {
        let err = data(&[
            ("data.json", r#"{"a": {"b": {"c": 1}}}"#),
            ("a/data.yaml", "b:\n  c: 2\n"),
        ])
        .unwrap_err();
        assert!(
            matches!(&err, Error::DataConflict { path, key } if path == "a/data.yaml" && key == "a.b.c"),
            "{err}"
        );
        let err = data(&[("data.json", r#"{"a": 1}"#), ("a/data.json", "{}")]).unwrap_err();
        assert!(
            matches!(&err, Error::DataConflict { key, .. } if key == "a"),
            "{err}"
        );
        let err = data(&[("data.json", r#"{"a": 1}"#), ("data.yml", "a: 1")]).unwrap_err();
        assert!(
            matches!(&err, Error::DataConflict { key, .. } if key == "a"),
            "{err}"
        );
    }

    #[test]
    fn bad_data_files_are_rejected_with_their_path() {
        let err = data(&[("x/data.json", "{")]).unwrap_err();
        assert!(matches!(&err, Error::DataJson { path, .. } if path == "x/data.json"));
        let err = data(&[("data.yaml", "a: [")]).unwrap_err();
        assert!(matches!(&err, Error::DataYaml { path, .. } if path == "data.yaml"));
        let err = data(&[("data.json", "[1]")]).unwrap_err();
        assert!(matches!(err, Error::DataNotObject { .. }));
        let err = data(&[("data.yaml", "")]).unwrap_err();
        assert!(matches!(err, Error::DataNotObject { .. }));
        let err = data(&[("settings.json", "{}")]).unwrap_err();
        assert!(matches!(err, Error::InvalidDataPath { .. }));
        let err = data(&[("../data.json", "{}")]).unwrap_err();
        assert!(matches!(err, Error::InvalidDataPath { .. }));
    }

    #[test]
    fn module_paths_must_be_unique_and_non_empty() {
        let err = Bundle::from_sources(vec![module("a.rego"), module("a.rego")], vec![]);
        assert!(matches!(
            err,
            Err(Error::InvalidModulePath {
                reason: "given twice",
                ..
            })
        ));
        let err = Bundle::from_sources(vec![module(" ")], vec![]);
        assert!(matches!(
            err,
            Err(Error::InvalidModulePath {
                reason: "empty",
                ..
            })
        ));
        let ok = Bundle::from_sources(vec![module("a.rego"), module("b/a_test.rego")], vec![]);
        let ok = ok.unwrap();
        assert!(ok.modules()[1].is_test());
        assert_eq!(ok.data(), &json!({}));
    }
}
