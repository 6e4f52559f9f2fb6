//! A reader for the Prometheus / OpenMetrics text format, enough for the console's figures:
//! sample lines (`name{label="value",…} value [timestamp]`), with comments skipped.
//!
//! A malformed line is skipped rather than failing the scrape: one odd series must not blank
//! the console.

use std::collections::BTreeMap;

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every well-formed sample of `text`.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(after_brace)?;
        labels = parsed;
        rest = after;
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// `a="x",b="y"}` → the labels and what follows the `}`.
fn parse_labels(mut s: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        s = s[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        };
        labels.insert(key.to_owned(), value);
        s = s[end + 1..].trim_start();
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn reads_openmetrics_as_prometheus_client_writes_it() {
        let text = "# HELP mpc_sessions Sessions.\n# TYPE mpc_sessions counter\n\
            mpc_sessions_total{service=\"session-coordinator\",type=\"sign\",outcome=\"completed\"} 3\n\
            mpc_sign_duration_seconds_bucket{le=\"+Inf\",threshold=\"2-of-3\"} 7\n\
            mpc_active_sessions{service=\"c\"} 0 1700000000\n\
            mpc_session_success_rate 0.9900990099\n\
            weird{a=\"q\\\"uo\\\\te\\n\"} 1.5e3\n\
            # EOF\n";
        let samples = parse(text);
        assert_eq!(samples.len(), 5, "{samples:?}");
        assert_eq!(samples[0].name, "mpc_sessions_total");
        assert_eq!(samples[0].labels["outcome"], "completed");
        assert_eq!(samples[0].value, 3.0);
        assert_eq!(samples[1].labels["le"], "+Inf");
        assert_eq!(samples[2].value, 0.0);
        assert!(samples[3].labels.is_empty());
        assert_eq!(samples[4].labels["a"], "q\"uo\\te\n");
        assert_eq!(samples[4].value, 1500.0);
    }

    #[test]
    fn malformed_lines_are_skipped() {
        for line in [
            "{a=\"b\"} 1",
            "9abc 1",
            "name{a=\"b\" 1",
            "name{a=b} 1",
            "name",
            "name{} x",
            "name{=\"v\"} 1",
        ] {
            assert!(parse(line).is_empty(), "{line}");
        }
        assert_eq!(parse("name{} 2")[0].value, 2.0);
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC*") {
            let _ = parse(&text);
        }

        #[test]
        fn label_values_round_trip(value in "\\PC*", n in -1.0e9f64..1.0e9) {
            let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            let line = format!("m{{k=\"{escaped}\"}} {n}");
            let samples = parse(&line);
            prop_assert_eq!(samples.len(), 1);
            prop_assert_eq!(&samples[0].labels["k"], &value);
            prop_assert_eq!(samples[0].value, n);
        }
    }
}
