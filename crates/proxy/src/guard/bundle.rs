//! Reading a policy bundle directory: every `.rego` file and every `data.json` / `data.yaml` /
//! `data.yml`, at any depth, in sorted order. Hidden entries (`.git`, and the `..data`
//! symlinks Kubernetes mounts ConfigMaps with) are skipped, so a mounted ConfigMap reads once.
//! Symlinks are followed, so a ConfigMap volume's visible names (links into `..data`) are read
//! once. Bounded: at most [`MAX_FILES`] files, [`MAX_FILE_BYTES`] each, [`MAX_TOTAL_BYTES`] in
//! all and [`MAX_DEPTH`] directory levels (which also stops a symlink loop); exceeding one is
//! an error naming the file, never a partial bundle.

use std::path::{Path, PathBuf};

use portcullis_policy::{Bundle, Module};

/// Most files read from one bundle.
const MAX_FILES: usize = 1000;
/// Largest file read.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Largest total of the files read.
const MAX_TOTAL_BYTES: u64 = 64 * 1024 * 1024;
/// Deepest directory nesting followed.
const MAX_DEPTH: usize = 16;

/// A bundle directory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A file or directory could not be read.
    #[error("cannot read `{}`", path.display())]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A limit was exceeded.
    #[error("`{}`: {what}", path.display())]
    Limit {
        /// Where.
        path: PathBuf,
        /// Which limit.
        what: String,
    },
    /// The path is not a directory.
    #[error("`{}` is not a directory", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// The directory holds no `.rego` file.
    #[error("`{}` holds no *.rego file", path.display())]
    Empty {
        /// The directory.
        path: PathBuf,
    },
    /// The files do not form a bundle (bad data file).
    #[error("{0}")]
    Invalid(#[from] portcullis_policy::Error),
}

/// Reads the bundle in `dir`. Module and data paths are relative to `dir`.
pub fn read_bundle_dir(dir: &Path) -> Result<Bundle, BundleError> {
    if !std::fs::metadata(dir).map_err(io(dir))?.is_dir() {
        return Err(BundleError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    let mut files = Vec::new();
    collect(dir, dir, 0, &mut files)?;
    files.sort();
    let mut modules = Vec::new();
    let mut data = Vec::new();
    let mut total = 0u64;
    for (relative, path) in files {
        let text = read_text(&path)?;
        total += text.len() as u64;
        if total > MAX_TOTAL_BYTES {
            return Err(BundleError::Limit {
                path,
                what: format!("the bundle's files exceed {MAX_TOTAL_BYTES} bytes in all"),
            });
        }
        if relative.ends_with(".rego") {
            modules.push(Module {
                path: relative,
                source: text,
            });
        } else {
            data.push((relative, text));
        }
    }
    if modules.is_empty() {
        return Err(BundleError::Empty {
            path: dir.to_path_buf(),
        });
    }
    Ok(Bundle::from_sources(modules, data)?)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BundleError + '_ {
    move |source| BundleError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn collect(
    root: &Path,
    dir: &Path,
    depth: usize,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<(), BundleError> {
    if depth > MAX_DEPTH {
        return Err(BundleError::Limit {
            path: dir.to_path_buf(),
            what: format!("nested deeper than {MAX_DEPTH} directories"),
        });
    }
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        // Follows symlinks: ConfigMap files are symlinks into the hidden `..data` directory.
        let meta = std::fs::metadata(&path).map_err(io(&path))?;
        if meta.is_dir() {
            collect(root, &path, depth + 1, out)?;
            continue;
        }
        let wanted = name.ends_with(".rego")
            || matches!(name.as_ref(), "data.json" | "data.yaml" | "data.yml");
        if !wanted {
            continue;
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(BundleError::Limit {
                path,
                what: format!("larger than {MAX_FILE_BYTES} bytes"),
            });
        }
        if out.len() >= MAX_FILES {
            return Err(BundleError::Limit {
                path: root.to_path_buf(),
                what: format!("more than {MAX_FILES} policy and data files"),
            });
        }
        let relative = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        out.push((relative, path));
    }
    Ok(())
}

fn read_text(path: &Path) -> Result<String, BundleError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(BundleError::Limit {
            path: path.to_path_buf(),
            what: format!("larger than {MAX_FILE_BYTES} bytes"),
        });
    }
    String::from_utf8(bytes).map_err(|_| BundleError::Limit {
        path: path.to_path_buf(),
        what: "not UTF-8".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, relative: &str, text: &str) {
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn reads_modules_and_data_in_path_order_skipping_hidden_and_other_files() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "z.rego", "package z");
        write(dir.path(), "a/b_test.rego", "package b");
        write(dir.path(), "a/data.yaml", "x: 1");
        write(dir.path(), "data.json", r#"{"top": true}"#);
        write(dir.path(), "README.md", "ignored");
        write(dir.path(), ".git/hidden.rego", "package hidden");
        write(dir.path(), ".hidden.rego", "package hidden");
        let bundle = read_bundle_dir(dir.path()).unwrap();
        let paths: Vec<&str> = bundle.modules().iter().map(|m| m.path.as_str()).collect();
        assert_eq!(paths, ["a/b_test.rego", "z.rego"]);
        assert_eq!(
            bundle.data(),
            &serde_json::json!({"top": true, "a": {"x": 1}})
        );
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "p.rego", "package p");
        write(dir.path(), "sub/data.json", "{oops");
        let err = read_bundle_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("sub/data.json"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.rego"), b"package p\n\xff").unwrap();
        let err = read_bundle_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("p.rego") && err.contains("not UTF-8"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "notes.txt", "no rego here");
        let err = read_bundle_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no *.rego file"), "{err}");
        let err = read_bundle_dir(&dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot read") && err.contains("missing"),
            "{err}"
        );
        let err = read_bundle_dir(&dir.path().join("notes.txt"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a directory"), "{err}");
    }

    #[test]
    fn limits_are_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let big = "#".repeat(usize::try_from(MAX_FILE_BYTES).unwrap() + 1);
        write(dir.path(), "big.rego", &big);
        let err = read_bundle_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("big.rego") && err.contains("larger than"),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        for i in 0..=MAX_FILES {
            write(dir.path(), &format!("f{i:04}.rego"), "");
        }
        let err = read_bundle_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("more than 1000"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn configmap_layout_reads_the_visible_symlinks_once() {
        // A ConfigMap volume: real files in a hidden timestamped directory, `..data` linking to
        // it, and each visible name linking into `..data`.
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "..2024_01_01/p.rego", "package p");
        write(dir.path(), "..2024_01_01/data.json", "{}");
        std::os::unix::fs::symlink("..2024_01_01", dir.path().join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/p.rego", dir.path().join("p.rego")).unwrap();
        std::os::unix::fs::symlink("..data/data.json", dir.path().join("data.json")).unwrap();
        let bundle = read_bundle_dir(dir.path()).unwrap();
        assert_eq!(bundle.modules().len(), 1);
        assert_eq!(bundle.modules()[0].path, "p.rego");
    }

    #[cfg(unix)]
    #[test]
    fn symlink_loops_stop_at_the_depth_limit() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "p.rego", "package p");
        std::os::unix::fs::symlink(dir.path(), dir.path().join("loop")).unwrap();
        let err = read_bundle_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("nested deeper"), "{err}");
    }
}
