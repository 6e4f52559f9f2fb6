//! Configuration variables: the process environment over an optional env file (`KEY=VALUE`
//! lines, the format of Docker's `env_file` and of a Kubernetes ConfigMap rendered to a file).
//! Every service reads its `MPC_…` variables through [`Vars::get`].

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, bail};

#[derive(Clone, Debug, Default)]
pub struct Vars {
    file: HashMap<String, String>,
}

impl Vars {
    /// The environment alone, or over the variables of `file`.
    pub fn load(file: Option<&Path>) -> Result<Self> {
        let Some(path) = file else {
            return Ok(Self::default());
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Self {
            file: parse(&text).with_context(|| format!("in {}", path.display()))?,
        })
    }

    /// The environment wins over the file; an empty value counts as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .or_else(|| self.file.get(name).cloned())
            .filter(|v| !v.is_empty())
    }
}

/// Parses `KEY=VALUE` lines: `#` comments and blank lines are skipped, an `export ` prefix and one
/// pair of matching quotes around the value are removed.
pub fn parse(text: &str) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            bail!("line {}: expected KEY=VALUE", n + 1);
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("line {}: invalid variable name {key:?}", n + 1);
        }
        let value = value.trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
            .unwrap_or(value);
        out.insert(key.to_owned(), unquoted.to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_env_files() {
        let m = parse("# comment\n\nexport A=1\nB = \"two words\"\nC='x=y'\nD=\n").unwrap();
        assert_eq!(m["A"], "1");
        assert_eq!(m["B"], "two words");
        assert_eq!(m["C"], "x=y");
        assert_eq!(m["D"], "");
    }

    #[test]
    fn rejects_malformed_lines_with_their_number() {
        let e = parse("A=1\nnot a pair\n").unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        assert!(parse("BAD-NAME=1").is_err());
    }

    #[test]
    fn environment_wins_and_empty_is_unset() {
        let v = Vars {
            file: parse("MPC_TEST_VARS_ONLY_IN_FILE=f\nMPC_TEST_VARS_EMPTY=\nPATH=from-file")
                .unwrap(),
        };
        assert_eq!(v.get("MPC_TEST_VARS_ONLY_IN_FILE").as_deref(), Some("f"));
        assert_eq!(v.get("MPC_TEST_VARS_EMPTY"), None);
        assert_ne!(v.get("PATH").as_deref(), Some("from-file"));
    }
}
